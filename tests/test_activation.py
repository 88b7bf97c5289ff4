"""``trioiis._server.activation``: systemd's LISTEN_FDS / LISTEN_PID and a supervisor's inherited
descriptors, read strictly."""

from __future__ import annotations

import os
import socket

import pytest

from trioiis._errors import ConfigError
from trioiis._server.activation import (
    ActivationError,
    inherited_redirect_sockets,
    inherited_sockets,
    systemd_sockets,
)
from trioiis.config import config_from_mapping


def test_no_variables_no_sockets() -> None:
    assert systemd_sockets({}) is None
    assert inherited_sockets({}) is None


def test_variables_for_another_process_are_removed_and_ignored() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "web"}
    assert systemd_sockets(env) is None
    assert env == {}  # a process started from here does not see them either


def test_inherited_listening_socket_is_adopted() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    fd = os.dup(listener.fileno())
    listener.close()
    env = {"TRIOIIS_LISTEN_FDS": str(fd)}
    (sock,) = inherited_sockets(env) or []
    with sock:
        assert sock.getsockname()[0] == "127.0.0.1"
        assert not sock.get_inheritable()
    assert env == {}


@pytest.mark.parametrize("value", ["", "a", "3,", "-1"])
def test_malformed_inherited_descriptors(value: str) -> None:
    with pytest.raises(ActivationError, match="TRIOIIS_LISTEN_FDS"):
        inherited_sockets({"TRIOIIS_LISTEN_FDS": value})


def test_a_descriptor_that_is_not_listening_is_refused_and_left_open() -> None:
    left, right = socket.socketpair()
    with left, right:
        with pytest.raises(ActivationError, match="not a listening TCP socket"):
            inherited_sockets({"TRIOIIS_LISTEN_FDS": str(left.fileno())})
        left.send(b"x")  # still open: not ours to close
        assert right.recv(1) == b"x"


def test_bad_listen_fds_count() -> None:
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "zero"}
    with pytest.raises(ConfigError, match="LISTEN_FDS='zero'"):
        systemd_sockets(env)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"trusted_proxies": ["10.0.0.1/8"]}, "trusted_proxies: '10.0.0.1/8' is not an address"),
        ({"trusted_proxies": ["localhost"]}, "trusted_proxies: 'localhost' is not an address"),
        ({"trusted_proxies": "10.0.0.0/8"}, "config key 'trusted_proxies' must be an array"),
        ({"proxy_protocol": "yes"}, "config key 'proxy_protocol' must be a boolean"),
    ],
)
def test_forwarding_settings_are_checked(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        config_from_mapping(data)
    assert "\n" not in str(error.value)


def test_forwarding_settings_from_toml() -> None:
    config = config_from_mapping({"proxy_protocol": True, "trusted_proxies": ["::1", "10.0.0.0/8"]})
    assert config.proxy_protocol is True
    assert config.trusted_proxies == ("::1", "10.0.0.0/8")


def test_an_empty_redirect_list_means_none_and_an_empty_listen_list_is_refused() -> None:
    """A supervisor with no ``https_redirect`` binding says so with an empty list, so the
    worker opens none of its own; a worker with no listener at all is a mistake."""
    env = {"TRIOIIS_REDIRECT_FDS": ""}
    assert inherited_redirect_sockets(env) == []
    assert env == {}
    with pytest.raises(ActivationError, match="TRIOIIS_LISTEN_FDS"):
        inherited_sockets({"TRIOIIS_LISTEN_FDS": ""})
