"""Secrets of a sweep's spec kept out of the sweep dir (issue 12, part 7).

A spec may hold `encryption_key` (TAO's model key) and URIs with credentials (`mlflow.tracking_uri`,
dataset URLs). The sweep dir sits on storage every node reads, so what is written there
(sweep.json, each trial's spec.yaml, the ledger, Tune's state) holds a *redacted* spec plus the list of
dotted paths whose values were removed (`SweepSetup.secret_paths`). The values travel in memory only:

- to every trial, on every node: in the trial's context (Ray's object store, via tune.with_parameters,
  and the Train loop config), not Ray's runtime_env, whose agent logs env_vars in plain text into the
  Ray session logs; a trial puts them back into its spec in memory (`restore_secrets`), its files keep
  the redacted spec;
- on resume: from environment variables, one per path (`env_name`: `encryption_key` ->
  `TAO_ENCRYPTION_KEY`, `mlflow.tracking_uri` -> `MLFLOW_TRACKING_URI`, others `GDINO_SECRET_<PATH>`),
  or from the spec given again (`-e spec.yaml`); neither gives `SecretMissing`, which says which
  variable to set. During a sweep the driver process has them in its environment too (promotion).

What counts as a secret is gdino.redact's rule (secret key names, credentials inside URIs).
"""
from __future__ import annotations

import copy
import os
import re
from typing import Any, Mapping, Optional

from gdino.errors import GdinoError
from gdino.redact import MASK, is_secret_key, redact_text

ENV_FOR_PATH = {"encryption_key": "TAO_ENCRYPTION_KEY", "mlflow.tracking_uri": "MLFLOW_TRACKING_URI"}


class SecretMissing(GdinoError):
    """A redacted secret of a sweep is not available to the process that needs it."""


def env_name(path: str) -> str:
    """The environment variable that carries the secret at dotted `path`."""
    if path in ENV_FOR_PATH:
        return ENV_FOR_PATH[path]
    return "GDINO_SECRET_" + re.sub(r"[^A-Za-z0-9]+", "_", path).upper().strip("_")


def split_secrets(spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(a copy of `spec` with every secret masked, {dotted path: the original value})."""
    secrets: dict[str, str] = {}
    redacted = _walk(copy.deepcopy(dict(spec)), "", secrets)
    return redacted, secrets


def _walk(node: Any, prefix: str, secrets: dict[str, str]) -> Any:
    if isinstance(node, dict):
        for key in list(node):
            path = f"{prefix}{key}"
            value = node[key]
            if is_secret_key(key) and isinstance(value, str) and value not in ("", MASK):
                secrets[path], node[key] = value, MASK
            else:
                node[key] = _walk(value, f"{path}.", secrets)
        return node
    if isinstance(node, list):
        return [_walk(v, f"{prefix}{i}.", secrets) for i, v in enumerate(node)]
    if isinstance(node, str) and prefix and redact_text(node) != node:
        secrets[prefix[:-1]] = node
        return redact_text(node)
    return node


def secret_env(secrets: Mapping[str, str]) -> dict[str, str]:
    """{environment variable: value} for the secrets of `split_secrets`."""
    return {env_name(path): value for path, value in secrets.items()}


def secrets_from_env(paths: list[str], environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """{path: value} for every path whose variable is set (possibly a subset)."""
    environ = os.environ if environ is None else environ
    return {p: environ[env_name(p)] for p in paths if environ.get(env_name(p))}


def require_secrets(paths: list[str], sweep_dir: str, *, spec_secrets: Optional[Mapping[str, str]] = None,
                    environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Every secret a sweep's redacted spec needs, from the spec given again, else the environment.
    Raises SecretMissing naming the variables to set."""
    found = {p: v for p, v in (spec_secrets or {}).items() if p in paths}
    found.update({p: v for p, v in secrets_from_env(paths, environ).items() if p not in found})
    missing = [p for p in paths if p not in found]
    if missing:
        names = ", ".join(f"{p} (${env_name(p)})" for p in missing)
        raise SecretMissing(
            f"the sweep in {sweep_dir} needs secrets that are not stored with it: {names}",
            hint="export " + " ".join(f"{env_name(p)}=..." for p in missing)
                 + ", or pass the sweep's spec again (`grounding_dino automl resume <sweep dir> -e spec.yaml`)")
    return found


def restore_secrets(spec: Mapping[str, Any], paths: list[str],
                    environ: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """A copy of the redacted `spec` with its secrets put back from the environment (in a trial: Ray's
    runtime_env env_vars). Raises SecretMissing when a variable is not set."""
    if not paths:
        return dict(spec)
    values = require_secrets(paths, "this trial's sweep", environ=environ)
    out = copy.deepcopy(dict(spec))
    for path, value in values.items():
        _set_path(out, path, value)
    return out


def _set_path(spec: dict[str, Any], path: str, value: str) -> None:
    node: Any = spec
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def with_available_secrets(spec: Mapping[str, Any], paths: list[str],
                           environ: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """Like restore_secrets, but puts back only the secrets the environment has (a later step such as
    promotion that may not need them all); the others stay masked."""
    out = copy.deepcopy(dict(spec))
    for path, value in secrets_from_env(paths, environ).items():
        _set_path(out, path, value)
    return out
