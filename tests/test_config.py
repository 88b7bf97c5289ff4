"""Configuration: ``load_config``, ``config_from_mapping``, the command-line parsers and
``merge_cli``. Every mistake is a ``ConfigError`` with one specific line, never another error."""

from __future__ import annotations

import ipaddress
import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import trioiis
import trioiis.config
import trioiis.modules
from trioiis import Binding, ConfigError, HttpServer, Limits, ServerConfig, load_config
from trioiis._context.mapping import HandlerMapping
from trioiis.config import (
    ModuleSpec,
    app_module_spec,
    config_from_mapping,
    load_register_function,
    merge_cli,
    parse_bind_option,
    parse_binding,
    parse_handler_option,
    parse_module_option,
)
from trioiis.modules import BUILTIN_MODULES

FULL = """
root = "site"
bindings = ["127.0.0.1:0", "[::1]:0", "localhost:8080"]
access_log = "logs/access.log"
default_documents = ["start.html", "index.html"]
max_connections = 50
shutdown_grace = 2.5
builtin_modules = true

[limits]
max_body_bytes = 1_000
keep_alive_timeout = 30
head_timeout = 1.5

[[modules]]
name = "hello"
target = "mods/hello.py:register_module"

[[modules]]
name = "pkg"
target = "examples.modules.hello:register_module"

[[modules]]
name = "absolute"
target = "/opt/mods/abs.py:register_module"

[[handlers]]
path = "*.txt"
modules = ["static_file"]
verbs = ["get", "HEAD"]

[[handlers]]
name = "hello pages"
path = "/hello*"
modules = ["hello", "static_file"]
"""


def write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(data: dict[str, Any], base: Path = Path(".")) -> str:
    """The message of the ConfigError that ``data`` raises (it must be one line)."""
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(data, base=base)
    message = str(caught.value)
    assert message
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ a full file


def test_full_file_gives_expected_config(tmp_path: Path) -> None:
    base = tmp_path / "conf"
    base.mkdir()
    config = load_config(write(base, FULL))
    assert config.root == base / "site"
    assert config.bindings == ("127.0.0.1:0", "[::1]:0", "localhost:8080")
    assert [parse_binding(b) for b in config.bindings] == [
        ("127.0.0.1", 0),
        ("::1", 0),
        ("localhost", 8080),
    ]
    # access_log is relative to the file, as every path in it (docs/configuration.md).
    assert config.access_log == str(base / "logs/access.log")
    assert config.default_documents == ("start.html", "index.html")
    assert config.max_connections == 50
    assert config.shutdown_grace == 2.5
    assert config.builtin_modules is True
    assert config.limits == Limits(max_body_bytes=1000, keep_alive_timeout=30, head_timeout=1.5)
    assert config.modules == (
        ModuleSpec(name="hello", target=f"{base / 'mods' / 'hello.py'}:register_module"),
        ModuleSpec(name="pkg", target="examples.modules.hello:register_module"),
        ModuleSpec(name="absolute", target="/opt/mods/abs.py:register_module"),
    )
    assert config.handlers == (
        HandlerMapping("*.txt", ("static_file",), frozenset({"GET", "HEAD"})),
        HandlerMapping("/hello*", ("hello", "static_file"), frozenset(), "hello pages"),
    )


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    # Without a root key the root is the default, the current folder (not the file's).
    assert load_config(write(tmp_path, "")) == ServerConfig()


def test_absolute_root_is_kept(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, f'root = "{tmp_path / "elsewhere"}"'))
    assert config.root == tmp_path / "elsewhere"


def test_overrides_replace_fields_after_reading(tmp_path: Path) -> None:
    path = write(tmp_path, 'access_log = "a.log"\nmax_connections = 3')
    config = load_config(path, access_log="-", max_connections=7)
    assert (config.access_log, config.max_connections) == ("-", 7)


def test_limits_accept_infinite_timeouts() -> None:
    config = config_from_mapping({"limits": {"keep_alive_timeout": math.inf}})
    assert config.limits.keep_alive_timeout == math.inf


# ------------------------------------------------------------------ mistakes


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"rot": "site"}, "unknown config key(s): rot"),
        ({"zeta": 1, "alpha": 2}, "unknown config key(s): alpha, zeta"),
        ({"root": 1}, "config key 'root' must be a string, not an integer"),
        ({"bindings": "127.0.0.1:80"}, "config key 'bindings' must be an array, not a string"),
        ({"bindings": [80]}, "config key 'bindings' must be an array of strings"),
        ({"bindings": [{"address": "127.0.0.1:80", "h2": False}]}, "unknown key(s) in a binding"),
        ({"bindings": [{"http2": False}]}, 'a binding table needs address = "HOST:PORT"'),
        (
            {"bindings": [{"address": "127.0.0.1:80", "http2": "no"}]},
            "binding '127.0.0.1:80': http2 must be true or false",
        ),
        ({"bindings": [{"address": "localhost"}]}, "binding 'localhost' is not HOST:PORT"),
        (
            {"bindings": ["127.0.0.1:80", {"address": "127.0.0.1:80", "http2": False}]},
            "binding '127.0.0.1:80' is listed twice",
        ),
        ({"bindings": []}, "bindings must not be empty"),
        ({"bindings": ["localhost"]}, "binding 'localhost' is not HOST:PORT"),
        ({"bindings": ["127.0.0.1:65536"]}, "binding '127.0.0.1:65536' is not HOST:PORT"),
        ({"bindings": ["::1:80"]}, "binding '::1:80' is not HOST:PORT"),
        ({"limits": 5}, "config key 'limits' must be a table, not an integer"),
        ({"limits": {"max_bodybytes": 1}}, "unknown limit 'max_bodybytes'"),
        ({"limits": {"max_body_bytes": -1}}, "limit 'max_body_bytes' must not be negative"),
        ({"limits": {"head_timeout": -0.5}}, "limit 'head_timeout' must not be negative"),
        ({"limits": {"head_timeout": math.nan}}, "limit 'head_timeout' must be a number"),
        ({"limits": {"max_body_bytes": "1"}}, "limit 'max_body_bytes' must be an integer"),
        ({"limits": {"max_body_bytes": 1.5}}, "limit 'max_body_bytes' must be an integer"),
        ({"limits": {"max_body_bytes": True}}, "limit 'max_body_bytes' must be an integer"),
        ({"modules": {"name": "x"}}, "config key 'modules' must be an array, not a table"),
        ({"modules": ["x"]}, "config key 'modules' must be an array of tables"),
        ({"modules": [{"name": "x"}]}, "[[modules]] #1 (x): unknown built-in module 'x'"),
        (
            {"modules": [{"name": "compresion"}]},
            "unknown built-in module 'compresion' (did you mean 'compression'?)",
        ),
        ({"modules": [{"target": "a.b:f"}]}, "[[modules]] #1 needs a name string"),
        (
            {"modules": [{"name": "a", "target": "a:f"}, {"name": "b", "target": 3}]},
            "[[modules]] #2 (b) needs a target string",
        ),
        (
            {"modules": [{"name": "x", "target": "a:f", "targte": "b"}]},
            "unknown key(s) in [[modules]] #1: targte",
        ),
        (
            {"modules": [{"name": "x", "target": "a.b"}]},
            "module target 'a.b' must be package.module:function",
        ),
        ({"handlers": [{"path": "*"}]}, "[[handlers]] #1 (*) needs a non-empty modules array"),
        (
            {"handlers": [{"path": "*", "modules": []}]},
            "[[handlers]] #1 (*) needs a non-empty modules array",
        ),
        (
            {"handlers": [{"path": "*", "modules": [1]}]},
            "[[handlers]] #1 (*) modules must be an array of strings",
        ),
        ({"handlers": [{"modules": ["a"]}]}, "[[handlers]] #1 needs a path string"),
        (
            {"handlers": [{"path": "*", "modules": ["a"], "verbs": "GET"}]},
            "[[handlers]] #1 (*) verbs must be an array of strings",
        ),
        (
            {"handlers": [{"path": "*", "modules": ["a"], "name": 3}]},
            "[[handlers]] #1 (*) name must be a string",
        ),
        (
            {"handlers": [{"path": "*", "modules": ["a"], "verb": ["GET"]}]},
            "unknown key(s) in [[handlers]] #1: verb",
        ),
        ({"default_documents": "index.html"}, "must be an array, not a string"),
        ({"builtin_modules": "yes"}, "config key 'builtin_modules' must be a boolean"),
        ({"access_log": False}, "config key 'access_log' must be a string, not a boolean"),
        ({"max_connections": 1.5}, "config key 'max_connections' must be an integer, not a float"),
        ({"max_connections": True}, "config key 'max_connections' must be an integer"),
        ({"max_connections": 0}, "max_connections must be at least 1"),
        ({"shutdown_grace": "5"}, "config key 'shutdown_grace' must be a number, not a string"),
        ({"shutdown_grace": -1}, "shutdown_grace must be a non-negative number"),
        ({"shutdown_grace": math.nan}, "shutdown_grace must be a non-negative number"),
        ({"http": "llhttp"}, 'http must be "h11" or "fast", not \'llhttp\''),
        ({"http": 1}, "config key 'http' must be a string, not an integer"),
        ({"denied_segments": ".git"}, "config key 'denied_segments' must be an array"),
        ({"denied_segments": ["a/b"]}, "denied_segments must be path segments"),
        ({"denied_segments": [""]}, "denied_segments must be path segments"),
        (
            {"allow_symlinks_outside_root": "yes"},
            "config key 'allow_symlinks_outside_root' must be a boolean",
        ),
    ],
)
def test_mistakes_are_one_specific_line(data: dict[str, Any], expected: str) -> None:
    assert expected in config_error(data)


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=r"cannot read config .*missing\.toml: No such file"):
        load_config(missing)
    with pytest.raises(ConfigError, match=r"cannot read config .*: Is a directory"):
        load_config(tmp_path)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b'root = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match=r"binary\.toml is not UTF-8 text") as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "text", ["root = ", "[limits\nmax_body_bytes = 1", 'root = "a"\nroot = "b"', "= 3"]
)
def test_invalid_toml(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text, "bad.toml")
    with pytest.raises(
        ConfigError, match=r"bad\.toml: \w.*\(at (line \d+, column \d+|end of document)\)$"
    ) as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


def test_mistakes_in_a_file_are_config_errors(tmp_path: Path) -> None:
    path = write(tmp_path, '[limits]\nmax_body_bytes = -5\n[[modules]]\nname = "x"\n')
    with pytest.raises(ConfigError, match="limit 'max_body_bytes' must not be negative"):
        load_config(path)


def test_unknown_override_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="colour"):
        load_config(write(tmp_path, ""), colour="blue")


# ------------------------------------------------------------------ ServerConfig in code


def test_server_config_in_code() -> None:
    assert ServerConfig(bindings="127.0.0.1:0").bindings == ("127.0.0.1:0",)
    assert ServerConfig(bindings=["[::1]:0"]).bindings == ("[::1]:0",)
    with pytest.raises(ConfigError, match="binding 'nope' is not HOST:PORT"):
        ServerConfig(bindings=["nope"])
    with pytest.raises(ConfigError, match="bindings must not be empty"):
        ServerConfig(bindings=())
    with pytest.raises(ConfigError, match="max_connections must be at least 1"):
        ServerConfig(max_connections=0)
    with pytest.raises(ConfigError, match="shutdown_grace"):
        ServerConfig(shutdown_grace=-1)


# ------------------------------------------------------------------ parse_binding

HOSTNAMES = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9._-]{0,30}[A-Za-z0-9])?\Z")
PORTS = st.integers(min_value=0, max_value=65535)


@st.composite
def bindings(draw: st.DrawFn) -> tuple[str, str, int]:
    """(text, host, port) for a valid binding."""
    port = draw(PORTS)
    kind = draw(st.sampled_from(["name", "ipv4", "ipv6"]))
    if kind == "ipv6":
        host = str(draw(st.ip_addresses(v=6)))
        return f"[{host}]:{port}", host, port
    host = draw(HOSTNAMES) if kind == "name" else str(draw(st.ip_addresses(v=4)))
    return f"{host}:{port}", host, port


@given(bindings())
@example(("127.0.0.1:0", "127.0.0.1", 0))
@example(("[::1]:65535", "::1", 65535))
@example(("localhost:8080", "localhost", 8080))
@example(("0.0.0.0:80", "0.0.0.0", 80))
def test_parse_binding_round_trips(case: tuple[str, str, int]) -> None:
    text, host, port = case
    assert parse_binding(text) == (host, port)


def is_valid_binding(text: str) -> bool:
    host, sep, port = text.rpartition(":")
    if not sep or not (len(port) <= 5 and port.isascii() and port.isdigit()):
        return False
    if int(port) > 65535:
        return False
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    # An empty host (":8080") is every interface.
    return all(c.isascii() and (c.isalnum() or c in "._-") for c in host)


@given(st.text(max_size=40) | st.builds(lambda h, p: f"{h}:{p}", st.text(max_size=10), st.text()))
@example("127.0.0.1:²")  # a digit to str.isdigit(), not to int()
@example("127.0.0.1:١٢")  # Arabic-Indic digits
@example("127.0.0.1:" + "9" * 5000)  # longer than int() converts
@example("127.0.0.1:-1")
@example("127.0.0.1:+80")
@example("127.0.0.1: 80")
@example(":80")
@example("[]:80")
@example("[::1:80")
@example("::1:80")
@example("[not-ipv6]:80")
@example("local host:80")
@example("127.0.0.1:65536")
def test_parse_binding_rejects_anything_else_with_config_error(text: str) -> None:
    if is_valid_binding(text):
        assert parse_binding(text)[1] == int(text.rpartition(":")[2])
        return
    with pytest.raises(ConfigError) as caught:
        parse_binding(text)
    assert "is not HOST:PORT" in str(caught.value)


@pytest.mark.parametrize("value", [None, 8080, b"127.0.0.1:80", ("127.0.0.1", 80)])
def test_parse_binding_of_non_strings(value: Any) -> None:
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        parse_binding(value)


# ------------------------------------------------------------------ command-line options


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("hello=examples/modules/hello.py:register_module", ("hello", "examples/modules/hello.py")),
        ("examples/modules/hello.py:register_module", ("hello", "examples/modules/hello.py")),
        ("mypkg.mymod:register_module", ("mymod", "mypkg.mymod")),
        ("mymod:register_module", ("mymod", "mymod")),
        ("api=mypkg.api:register_module", ("api", "mypkg.api")),
    ],
)
def test_parse_module_option(text: str, spec: tuple[str, str]) -> None:
    name, module = spec
    assert parse_module_option(text) == ModuleSpec(name=name, target=f"{module}:register_module")


@pytest.mark.parametrize(
    "text",
    [
        "hello.py",
        "hello=hello.py",
        "mypkg.mymod",
        "=hello.py:register_module",
        "hello=:register_module",
        "hello=hello.py:",
        "hello=",
        ":register_module",
        "",
    ],
)
def test_parse_module_option_mistakes(text: str) -> None:
    with pytest.raises(ConfigError, match=r"must be \[NAME=\]package\.module:function") as caught:
        parse_module_option(text)
    assert "\n" not in str(caught.value)


def test_parse_handler_option() -> None:
    assert parse_handler_option("*.txt=static_file") == HandlerMapping("*.txt", ("static_file",))
    assert parse_handler_option("/api/*=auth, api") == HandlerMapping("/api/*", ("auth", "api"))


@pytest.mark.parametrize("text", ["*.txt", "*.txt=", "=static_file", "*.txt=,", "*.txt= , ", ""])
def test_parse_handler_option_mistakes(text: str) -> None:
    with pytest.raises(ConfigError, match=r"must be PATTERN=MODULE\[,MODULE\.\.\.\]"):
        parse_handler_option(text)


def test_merge_cli_command_line_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        root = "site"
        bindings = ["127.0.0.1:1"]
        access_log = "file.log"
        max_connections = 9
        [[modules]]
        name = "first"
        target = "pkg.first:register_module"
        [[handlers]]
        path = "/file/*"
        modules = ["first"]
        """,
    )
    config = load_config(path)
    merged = merge_cli(
        config,
        root="cli-root",
        bindings=["127.0.0.1:0", "[::1]:0"],
        modules=["second=pkg.second:register_module"],
        handlers=["/cli/*=second"],
        access_log="-",
    )
    assert merged.root == Path("cli-root")
    assert merged.bindings == ("127.0.0.1:0", "[::1]:0")
    assert merged.access_log == "-"
    assert [m.name for m in merged.modules] == ["first", "second"]  # the command line adds
    assert [h.path for h in merged.handlers] == ["/cli/*", "/file/*"]  # and goes first
    assert merged.max_connections == 9  # what the command line does not say is kept


def test_a_binding_table_turns_http2_off_there_alone() -> None:
    data = {"bindings": ["127.0.0.1:80", {"address": "[::1]:81", "http2": False}]}
    config = config_from_mapping(data)
    assert config.bindings == ("127.0.0.1:80", Binding("[::1]:81", http2=False))
    assert config.addresses == ("127.0.0.1:80", "[::1]:81")
    assert [config.binding_http2(b) for b in config.bindings] == [True, False]
    config = config_from_mapping({**data, "http2": False})  # the key is every binding's default
    assert [config.binding_http2(b) for b in config.bindings] == [False, False]
    on = config_from_mapping({"http2": False, "bindings": [{"address": ":80", "http2": True}]})
    assert [on.binding_http2(b) for b in on.bindings] == [True]


@pytest.mark.parametrize(
    ("text", "binding"),
    [
        ("127.0.0.1:80", "127.0.0.1:80"),
        ("127.0.0.1:80,http2=off", Binding("127.0.0.1:80", http2=False)),
        ("[::1]:80,http2=on", Binding("[::1]:80", http2=True)),
    ],
)
def test_parse_bind_option(text: str, binding: str | Binding) -> None:
    assert parse_bind_option(text) == binding


@pytest.mark.parametrize("text", ["127.0.0.1:80,http2=no", "127.0.0.1:80,h2=off", ":80,"])
def test_parse_bind_option_mistakes(text: str) -> None:
    with pytest.raises(ConfigError, match="options are http2=on or http2=off"):
        parse_bind_option(text)


def test_merge_cli_without_options_changes_nothing(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    unchanged = merge_cli(config, root=None, bindings=[], modules=[], handlers=[], access_log=None)
    assert unchanged == config


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bindings": ["nope"]}, "binding 'nope' is not HOST:PORT"),
        ({"modules": ["nope.py"]}, "module 'nope.py' must be"),
        ({"handlers": ["nope"]}, "handler 'nope' must be"),
    ],
)
def test_merge_cli_mistakes(options: dict[str, Any], message: str) -> None:
    kwargs: dict[str, Any] = {
        "root": None,
        "bindings": [],
        "modules": [],
        "handlers": [],
        "access_log": None,
    }
    with pytest.raises(ConfigError, match=message):
        merge_cli(ServerConfig(), **(kwargs | options))


def test_builtin_module_by_name_and_options_reach_register_module(tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []

    def register(version: int, info: trioiis.ModuleRegistrationInfo, server: object) -> None:
        seen.append(dict(info.options))

    config = trioiis.config.config_from_mapping(
        {
            "modules": [
                {"name": "directory_listing"},
                {"name": "custom", "target": "x.py:f", "options": {"colour": "blue", "n": 3}},
            ]
        },
        base=tmp_path,
    )
    listing, custom = config.modules
    assert listing.target == "trioiis.modules.directory_listing:register_module"
    assert dict(custom.options) == {"colour": "blue", "n": 3}
    server = trioiis.HttpServer(trioiis.ServerConfig(root=tmp_path))
    server.register_module("custom", register, custom.options)
    assert seen == [{"colour": "blue", "n": 3}]
    assert trioiis.config.parse_module_option("directory_listing").target == listing.target
    with pytest.raises(trioiis.ConfigError, match="options must be a table"):
        trioiis.config.config_from_mapping(
            {"modules": [{"name": "x", "target": "a:b", "options": 3}]}
        )


def test_a_modules_entry_replaces_the_default_module_of_that_name(tmp_path: Path) -> None:
    config = trioiis.config.config_from_mapping(
        {"modules": [{"name": "custom_errors", "options": {"mode": "off"}}]}, base=tmp_path
    )
    server = trioiis.HttpServer(config)
    names = [r.name for r in server.pipeline.registrations]
    assert sorted(names) == sorted(trioiis.modules.DEFAULT_MODULES)
    assert names[-1] == "custom_errors"  # loaded where the config names it
    options = {r.name: dict(r.options) for r in server.pipeline.registrations}
    assert options["custom_errors"] == {"mode": "off"}


# ---------------------------------------------------------------- TLS and sites (virtual hosts)


def test_tls_and_sites_keys_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(
        'tls_cert = "tls/cert.pem"\n'
        'tls_key = "tls/key.pem"\n'
        "[[sites]]\n"
        'name = "blog"\n'
        'root = "blog"\n'
        'hosts = ["Blog.Example.Test", "www.blog.test."]\n'
        "[[sites]]\n"
        'name = "fallback"\n'
        'root = "/srv/fallback"\n'
        "default = true\n"
    )
    config = load_config(tmp_path / "site.toml")
    assert config.tls_cert == tmp_path / "tls" / "cert.pem"
    assert config.tls_key == tmp_path / "tls" / "key.pem"
    blog, fallback = config.sites
    assert blog == trioiis.config.SiteConfig(
        name="blog", root=tmp_path / "blog", hosts=("blog.example.test", "www.blog.test")
    )
    assert fallback.root == Path("/srv/fallback")
    assert fallback.default
    assert fallback.hosts == ()
    assert ServerConfig().sites == ()
    assert ServerConfig().tls_cert is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tls_cert": "c.pem"}, "tls_cert and tls_key go together"),
        ({"tls_key": "k.pem"}, "tls_cert and tls_key go together"),
        ({"tls_cert": 3, "tls_key": "k.pem"}, "'tls_cert' must be a string"),
        ({"sites": {"name": "x"}}, "'sites' must be an array"),
        ({"sites": [{"root": "r", "default": True}]}, r"\[\[sites\]\] #1 needs a name"),
        ({"sites": [{"name": "a", "default": True}]}, r"\[\[sites\]\] #1 \(a\) needs a root"),
        ({"sites": [{"name": "a", "root": "r"}]}, "site 'a' needs hosts or default = true"),
        ({"sites": [{"name": "a", "root": "r", "hosts": "x"}]}, "hosts must be an array"),
        ({"sites": [{"name": "a", "root": "r", "hosts": ["x:80"]}]}, "is not a host name"),
        ({"sites": [{"name": "a", "root": "r", "hosts": ["http://x"]}]}, "is not a host name"),
        ({"sites": [{"name": "a", "root": "r", "default": 1}]}, "default must be a boolean"),
        ({"sites": [{"name": "a", "root": "r", "port": 1}]}, r"unknown key\(s\).*: port"),
        (
            {"sites": [{"name": "a", "root": "r", "default": True}] * 2},
            "two sites are named 'a'",
        ),
        (
            {
                "sites": [
                    {"name": "a", "root": "r", "hosts": ["x.test"]},
                    {"name": "b", "root": "r", "hosts": ["X.test"]},
                ]
            },
            "host 'x.test' is in both site 'a' and site 'b'",
        ),
    ],
)
def test_bad_tls_and_sites_keys_are_one_line_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        config_from_mapping(data)
    assert "\n" not in str(caught.value)


def test_site_config_in_code_accepts_a_single_host_string_and_ipv6() -> None:
    site = trioiis.config.SiteConfig(name="a", root="r", hosts="A.test")  # type: ignore[arg-type]
    assert site.hosts == ("a.test",)
    assert site.root == Path("r")
    assert trioiis.config.SiteConfig(name="b", root="r", hosts=("[::1]",)).hosts == ("[::1]",)


def test_merge_cli_tls_options() -> None:
    merged = merge_cli(
        ServerConfig(),
        root=None,
        bindings=[],
        modules=[],
        handlers=[],
        access_log=None,
        tls_cert="c.pem",
        tls_key="k.pem",
    )
    assert (merged.tls_cert, merged.tls_key) == (Path("c.pem"), Path("k.pem"))
    with pytest.raises(ConfigError, match="go together"):
        merge_cli(
            ServerConfig(),
            root=None,
            bindings=[],
            modules=[],
            handlers=[],
            access_log=None,
            tls_cert="c.pem",
        )


# ------------------------------------------------------------------ hosted apps


def test_handler_with_an_app_loads_its_module_and_mounts_it(tmp_path: Path) -> None:
    config_file = tmp_path / "trioiis.toml"
    config_file.write_text(
        '[[modules]]\nname = "directory_listing"\n'
        '[[handlers]]\npath = "/api/*"\nasgi = "api.py:app"\n'
        '[[handlers]]\nname = "shop"\npath = "/shop*"\nwsgi = "shop:app"\nroot_path = "/shop"\n'
        '[[handlers]]\npath = "*.md"\nmodules = ["static_file"]\n'
    )
    config = load_config(config_file)
    assert [(m.name, m.target, dict(m.options)) for m in config.modules] == [
        ("directory_listing", BUILTIN_MODULES["directory_listing"], {}),
        (
            "asgi /api/*",
            BUILTIN_MODULES["asgi"],
            {"app": f"{tmp_path}/api.py:app", "root_path": "/api"},
        ),
        ("shop", BUILTIN_MODULES["wsgi"], {"app": "shop:app", "root_path": "/shop"}),
    ]
    assert [(h.path, h.modules) for h in config.handlers] == [
        ("/api/*", ("asgi /api/*",)),
        ("/api", ("asgi /api/*",)),  # the mount point: redirected to /api/
        ("/shop*", ("shop",)),  # (not NAME/*: no mount-point mapping)
        ("*.md", ("static_file",)),
    ]


@pytest.mark.parametrize(
    ("pattern", "root_path"),
    [("/app/*", "/app"), ("/a/b/*", "/a/b"), ("/*", ""), ("*", ""), ("/a*/*", ""), ("*.py", "")],
)
def test_app_mount_point_from_the_pattern(pattern: str, root_path: str) -> None:
    spec = app_module_spec("asgi", pattern, "m:app")
    assert spec.options["root_path"] == root_path


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"path": "/a/*", "asgi": "m:app", "modules": ["x"]}, "give one of modules, asgi or wsgi"),
        ({"path": "/a/*", "asgi": "m:app", "wsgi": "m:app"}, "give one of modules, asgi or wsgi"),
        ({"path": "/a/*", "asgi": 3}, "asgi must be a string pkg.module:attribute"),
        ({"path": "/a/*", "wsgi": "m"}, "wsgi app 'm' must be pkg.module:attribute"),
        ({"path": "/a/*", "asgi": "m:app", "root_path": 1}, "root_path must be a string"),
        ({"path": "/a/*", "modules": ["x"], "root_path": "/a"}, "root_path goes with asgi"),
    ],
)
def test_app_handler_mistakes(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_mapping({"handlers": [table]})


def test_merge_cli_apps_come_first() -> None:
    config = config_from_mapping({"handlers": [{"path": "*.md", "modules": ["static_file"]}]})
    merged = merge_cli(
        config,
        root=None,
        bindings=[],
        modules=[],
        handlers=["*.txt=static_file"],
        access_log=None,
        asgi=["/api/*=api:app"],
        wsgi=["/shop/*=shop:app"],
    )
    assert [h.path for h in merged.handlers] == [
        "/api/*",
        "/api",
        "/shop/*",
        "/shop",
        "*.txt",
        "*.md",
    ]
    assert [m.name for m in merged.modules] == ["asgi /api/*", "wsgi /shop/*"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "option 'app' must be a string"),
        ({"app": "m"}, "must be pkg.module:attribute"),
        ({"app": "tests.e2e.app_samples:conformance", "lifespan": "yes"}, "auto, on or off"),
        ({"app": "tests.e2e.app_samples:conformance", "root_path": "app"}, "like '/app'"),
        ({"app": "tests.e2e.app_samples:EVENTS"}, "is not callable"),
        ({"app": "tests.e2e.app_samples:conformance", "disconnect_grace": -1}, "non-negative"),
        ({"app": "tests.e2e.app_samples:conformance", "colour": 1}, "unknown option(s) colour"),
    ],
)
def test_asgi_module_option_mistakes(options: dict[str, Any], message: str) -> None:
    server = HttpServer(ServerConfig(builtin_modules=False))
    with pytest.raises(ConfigError, match=re.escape(message)):
        server.register_module("asgi", load_register_function(BUILTIN_MODULES["asgi"]), options)


def test_wsgi_module_needs_at_least_one_thread() -> None:
    server = HttpServer(ServerConfig(builtin_modules=False))
    options = {"app": "tests.e2e.app_samples:flask_app", "threads": 0}
    with pytest.raises(ConfigError, match="'threads' must be at least 1"):
        server.register_module("wsgi", load_register_function(BUILTIN_MODULES["wsgi"]), options)


def test_fast_parser_needs_httptools(monkeypatch: pytest.MonkeyPatch) -> None:
    assert trioiis.HttpServer(ServerConfig(http="fast"))  # installed with the test extra
    monkeypatch.setattr("trioiis._server.server.fast_parser_available", lambda: False)
    with pytest.raises(ConfigError, match=r"needs httptools: pip install 'trioiis\[fast\]'"):
        trioiis.HttpServer(ServerConfig(http="fast"))


def test_a_module_file_is_imported_once_per_process(tmp_path: Path) -> None:
    # Module registrations and hosted apps come through one importer: a file is a module
    # like any package module, run once however many servers or handlers name it.
    file = tmp_path / "counted.py"
    file.write_text(
        "import builtins\n"
        "builtins.trioiis_counted_runs = getattr(builtins, 'trioiis_counted_runs', 0) + 1\n"
        "def register_module(server_version, info, server): pass\n"
        "def app(environ, start_response): return []\n"
    )
    import builtins

    try:
        first = load_register_function(f"{file}:register_module")
        second = load_register_function(f"{file}:register_module")
        module, module_path, attr = trioiis.config.import_target(f"{file}:app")
        assert first is second
        assert module.app is not None
        assert (module_path, attr) == (str(file), "app")
        assert builtins.trioiis_counted_runs == 1  # type: ignore[attr-defined]
    finally:
        del builtins.trioiis_counted_runs  # type: ignore[attr-defined]


def test_a_module_file_that_fails_to_import_is_tried_again(tmp_path: Path) -> None:
    file = tmp_path / "broken.py"
    file.write_text("raise RuntimeError('not yet')\n")
    with pytest.raises(ConfigError, match=r"cannot import .*broken.py: RuntimeError: not yet"):
        load_register_function(f"{file}:register_module")
    file.write_text("def register_module(server_version, info, server): pass\n")
    assert callable(load_register_function(f"{file}:register_module"))


def test_file_settings_reach_each_module_as_its_server_settings(tmp_path: Path) -> None:
    config = config_from_mapping(
        {"root": "site", "denied_segments": ["Private"], "allow_symlinks_outside_root": True},
        base=tmp_path,
    )
    server = config.global_server()
    assert server.denied_segments == ("Private",)
    assert server.allow_symlinks_outside_root is True
    assert server.site_roots == (str(tmp_path / "site"),)
    assert ServerConfig().global_server().denied_segments == (".git", ".env", "__pycache__")


def test_a_module_whose_extra_is_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """prometheus-client comes with ``trioiis[metrics]``: without it, loading the metrics
    module is a one-line ConfigError that says what to install."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "trioiis.modules.metrics", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_register_function(BUILTIN_MODULES["metrics"])
    message = str(caught.value)
    assert "cannot import trioiis.modules.metrics" in message
    assert "pip install 'trioiis[metrics]'" in message
    assert "\n" not in message
