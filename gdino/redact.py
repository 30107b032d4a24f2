"""Keep secrets out of MLflow and logs: `encryption_key`, tokens, passwords, credentials in URIs.

Everything the tracking code writes (params, tags, artifacts such as the resolved spec YAML, error
texts) and every record our loggers emit goes through `redact` first. Two rules:

1. by key: a mapping entry whose key names a secret (encryption_key, *token*, *password*, secret,
   api_key, credentials, ...) keeps its key but its value becomes `***`;
2. by value: inside any string, `scheme://user:pass@host` becomes `scheme://***@host`, and
   `key=value` / `key: value` / `"key": "value"` pairs with a secret key are masked.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Iterable

MASK = "***"

# Key names (case-insensitive, any separator) whose values are secrets.
_SECRET_KEY = re.compile(
    r"(encryption[_.-]?key|(^|[_.-])key$|token|passw(or)?d|passwd|secret|api[_.-]?key|credential|"
    r"private[_.-]?key|access[_.-]?key|auth)", re.IGNORECASE)
# Keys that match the pattern above but are not secrets (hyperparameters and our own tags).
_NOT_SECRET = re.compile(r"(max_text_len|num_tokens|tokenizer|token_type|text_encoder|author)", re.IGNORECASE)

# scheme://user[:password]@host  ->  scheme://***@host
_URI_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<cred>[^/\s@:'\"]+(:[^/\s@'\"]*)?)@")
# key=value, key: value, "key": "value" with a secret key name, inside free text (log lines, YAML).
_INLINE_PAIR = re.compile(
    r"(?P<key>[\"']?[A-Za-z0-9_.-]*(encryption[_.-]?key|token|passw(?:or)?d|secret|api[_.-]?key|"
    r"credential|access[_.-]?key)[A-Za-z0-9_.-]*[\"']?)(?P<sep>\s*[:=]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;}\]]+)",
    re.IGNORECASE)


def is_secret_key(key: Any) -> bool:
    name = str(key)
    return bool(_SECRET_KEY.search(name)) and not _NOT_SECRET.search(name)


def redact_text(text: str) -> str:
    """Mask URI credentials and secret `key=value` pairs inside a string."""
    text = _URI_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    return _INLINE_PAIR.sub(_mask_pair, text)


def _mask_pair(match: re.Match) -> str:
    key = match.group("key")
    if not is_secret_key(key.strip("\"'")):
        return match.group(0)
    value = match.group("value")
    quote = value[0] if value[:1] in {"'", '"'} else ""
    return f"{key}{match.group('sep')}{quote}{MASK}{quote}"


def redact(obj: Any) -> Any:
    """A copy of `obj` (dicts, lists, tuples, strings, scalars) with every secret masked."""
    if isinstance(obj, dict):
        return {k: (MASK if is_secret_key(k) and obj[k] not in (None, "") else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v) for v in obj)
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def contains_secret(text: str, secrets: Iterable[str]) -> bool:
    """For tests and audits: does `text` still contain one of the literal secret values?"""
    return any(s and s in text for s in secrets)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's message and arguments before it is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the caller's bug; do not hide the record
            return True
        record.msg, record.args = redact_text(message), None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


OUR_LOGGERS = ("gdino", "hpo", "trt")


def install_log_redaction(logger_names: Iterable[str] = OUR_LOGGERS) -> RedactingFilter:
    """Attach one RedactingFilter to our loggers and their handlers (idempotent)."""
    redactor = next((f for f in logging.getLogger(OUR_LOGGERS[0]).filters if isinstance(f, RedactingFilter)),
                    None) or RedactingFilter()
    for name in logger_names:
        logger = logging.getLogger(name)
        if redactor not in logger.filters:
            logger.addFilter(redactor)
    for handler in logging.getLogger().handlers:  # records from child loggers skip logger filters
        if redactor not in handler.filters:
            handler.addFilter(redactor)
    return redactor
