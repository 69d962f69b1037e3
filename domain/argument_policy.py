"""Which arguments an allowed binary may take (DESIGN §12): the rules as data, one check.

`kubectl` and `helm` run only their read subcommands, named first, with the worker's own
kubeconfig (a kubeconfig names credential plugins to exec). `curl` runs only with the
options listed here, by their exact names: curl 7.x takes any unambiguous prefix of a long
option (`--out` is `--output`), so a list of forbidden options would have to foresee every
prefix and every option a later curl adds; a list of allowed ones refuses all of those
unread. None of the allowed options reads or writes a local file or curl's config, and those
that would read a file from their value (`@file`; `name@file` for `--data-urlencode`; a
cookie without `=`; `%output{}` in `-w`) are refused that value. Every URL must be http or
https, and no job's env may point curl at a config, key-log or qlog location. `-q` goes
first, so no `.curlrc` is read.
A refusal names its rule (`CommandRejected.rule`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Final

KUBECTL_SUBCOMMANDS: Final = frozenset(
    {"get", "describe", "logs", "top", "version", "explain", "api-resources", "cluster-info"}
)
HELM_SUBCOMMANDS: Final = frozenset({"list", "status", "history", "get", "version"})
# Flags that write local files (kubectl's), or choose a kubeconfig: a kubeconfig names the
# credential plugins the binary execs, so only the worker's own KUBECONFIG is used. pflag
# takes no abbreviations: exact names, alone or with `=value`.
KUBECTL_FORBIDDEN_FLAGS: Final = frozenset(
    {"--output-directory", "--log-file", "--log-dir", "--kubeconfig"}
)
HELM_FORBIDDEN_FLAGS: Final = frozenset({"--kubeconfig"})
KUBE_FORBIDDEN_ENV: Final = frozenset({"KUBECONFIG"})

# curl's options that take no value, by long name, and their one-letter forms.
CURL_FLAGS: Final = frozenset(
    {
        "silent", "show-error", "include", "head", "location", "fail", "fail-with-body",
        "verbose", "insecure", "ipv4", "ipv6", "get", "no-buffer", "compressed", "globoff",
        "http1.0", "http1.1", "http2", "no-keepalive", "disable", "progress-bar",
        "location-trusted", "tcp-nodelay", "no-progress-meter", "raw",
    }
)  # fmt: skip
# Options that take a value (the next argument, or the rest of a one-letter group).
CURL_VALUED: Final = frozenset(
    {
        "header", "request", "max-time", "connect-timeout", "user-agent", "referer", "user",
        "data", "data-raw", "data-binary", "data-urlencode", "retry", "retry-delay",
        "retry-max-time", "write-out", "url", "max-filesize", "limit-rate", "range",
        "oauth2-bearer", "cookie", "resolve", "connect-to", "max-redirs",
    }
)  # fmt: skip
CURL_SHORT: Final[Mapping[str, str]] = {
    "s": "silent", "S": "show-error", "i": "include", "I": "head", "L": "location",
    "f": "fail", "v": "verbose", "k": "insecure", "4": "ipv4", "6": "ipv6", "G": "get",
    "N": "no-buffer", "g": "globoff", "0": "http1.0", "q": "disable", "#": "progress-bar",
    "H": "header", "X": "request", "m": "max-time", "A": "user-agent", "e": "referer",
    "u": "user", "d": "data", "w": "write-out", "b": "cookie", "r": "range",
}  # fmt: skip
# Env a job may not set for curl: a config home (`.curlrc`) or a file to write TLS keys to.
# (QLOGDIR: an HTTP/3 curl writes its qlog files there.)
CURL_FORBIDDEN_ENV: Final = frozenset({"CURL_HOME", "XDG_CONFIG_HOME", "SSLKEYLOGFILE", "QLOGDIR"})

_URL = re.compile(r"https?://", re.IGNORECASE)


class ArgumentRefused(ValueError):
    """An argument list a binary's rule refuses; `rule` names the rule."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"command rejected: {detail} (rule {rule})")
        self.rule = rule


def _reads_file(value: str) -> bool:
    return value.startswith("@")


def _urlencode_reads_file(value: str) -> bool:
    # `@file` and `name@file` read a file; `name=content` and `=content` do not.
    return "@" in value.split("=", 1)[0]


def _write_out_touches_file(value: str) -> bool:
    # `@file` reads the format from a file; `%output{file}` (curl 8.3) writes to one.
    return value.startswith("@") or "%output{" in value


# Values that make an allowed option touch a local file.
_CURL_VALUE_CHECKS: Final[Mapping[str, Callable[[str], bool]]] = {
    "data": _reads_file,
    "data-binary": _reads_file,
    "data-urlencode": _urlencode_reads_file,
    "header": _reads_file,
    "write-out": _write_out_touches_file,
    "cookie": lambda value: "=" not in value,  # without `=` it names a cookie file to read
}


def check_arguments(
    binary: str, argv: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The argv to run, or `ArgumentRefused` naming the rule it breaks. Binaries without a
    rule here take any arguments."""
    rule = _RULES.get(binary)
    if rule is None:
        return tuple(argv)
    return rule(argv, env or {})


def _subcommands(
    binary: str, allowed: frozenset[str], forbidden: frozenset[str]
) -> Callable[..., tuple[str, ...]]:
    def check(argv: Sequence[str], env: Mapping[str, str]) -> tuple[str, ...]:
        for key in env:
            if key in KUBE_FORBIDDEN_ENV:
                raise ArgumentRefused(
                    f"{binary}.env", f"{binary} may not be given {key}: it uses the worker's own"
                )
        if len(argv) < 2 or argv[1] not in allowed:
            given = f"'{argv[1]}'" if len(argv) > 1 else "nothing"
            raise ArgumentRefused(
                f"{binary}.subcommand",
                f"{binary} runs only read subcommands, named first "
                f"({', '.join(sorted(allowed))}); got {given}",
            )
        for arg in argv[2:]:
            if arg.split("=", 1)[0] in forbidden:
                raise ArgumentRefused(
                    f"{binary}.option",
                    f"{binary} option '{arg}' is not allowed (it writes local files or "
                    "chooses another kubeconfig)",
                )
        return tuple(argv)

    return check


def _curl(argv: Sequence[str], env: Mapping[str, str]) -> tuple[str, ...]:
    for key in env:
        if key in CURL_FORBIDDEN_ENV:
            raise ArgumentRefused(
                "curl.env", f"curl may not be given {key} (it names a file curl reads or writes)"
            )
    args = list(argv[1:])
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            for url in args[i:]:
                _check_url(url)
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if eq:
                _check_option(name, value, arg)
            elif name in CURL_VALUED:
                _check_option(name, args[i] if i < len(args) else "", arg)
                i += 1
            else:
                _check_option(name, None, arg)
        elif arg.startswith("-") and len(arg) > 1:
            i = _short_group(arg, args, i)
        else:
            _check_url(arg)
    return (argv[0], "-q", *argv[1:])


def _short_group(arg: str, args: list[str], i: int) -> int:
    """Check `-sSo` style groups: flags, then at most one valued letter taking the rest of the
    group or the next argument. Returns the index after what the group used."""
    for pos, letter in enumerate(arg[1:], start=1):
        name = CURL_SHORT.get(letter)
        if name is None:
            raise ArgumentRefused(
                "curl.option", f"curl option '-{letter}' (in '{arg}') is not allowed"
            )
        if name in CURL_VALUED:
            rest = arg[pos + 1 :]
            if rest:
                _check_option(name, rest, arg)
                return i
            _check_option(name, args[i] if i < len(args) else "", arg)
            return i + 1
    return i


def _check_option(name: str, value: str | None, spelled: str) -> None:
    if name not in CURL_FLAGS and name not in CURL_VALUED:
        raise ArgumentRefused(
            "curl.option",
            f"curl option '{spelled}' is not allowed (only options that touch no local file "
            "or config, by their full names)",
        )
    if value is None:
        return
    if name == "url":
        _check_url(value)
    check = _CURL_VALUE_CHECKS.get(name)
    if check is not None and check(value):
        raise ArgumentRefused(
            "curl.file-argument", f"curl option '{spelled}' may not read or write a local file"
        )


def _check_url(url: str) -> None:
    if not _URL.match(url):
        raise ArgumentRefused(
            "curl.url-scheme", f"curl fetches only http:// and https:// URLs; got '{url[:80]}'"
        )


_RULES: Final[Mapping[str, Callable[[Sequence[str], Mapping[str, str]], tuple[str, ...]]]] = {
    "kubectl": _subcommands("kubectl", KUBECTL_SUBCOMMANDS, KUBECTL_FORBIDDEN_FLAGS),
    "helm": _subcommands("helm", HELM_SUBCOMMANDS, HELM_FORBIDDEN_FLAGS),
    "curl": _curl,
}
