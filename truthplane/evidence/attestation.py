"""An in-toto Statement v1 beside each execution record, in a DSSE envelope, optionally MAC-signed.

`execution_<UTC>.intoto.json` is a DSSE envelope (payloadType application/vnd.in-toto+json) whose
payload is an in-toto Statement: the subject is the execution file (its sha256) and every commit it
records (gitCommit digest); the predicate carries the run id, the record hash and the chain link.

Signing is a shared-secret HMAC-SHA256 over DSSE's pre-authentication encoding, keyed by the
TRUTHPLANE_SIGNING_KEY environment variable. It is not a public-key signature: whoever can check it
can also make one. Without the variable the envelope has no signatures.

Signing cannot be downgraded: once a chain holds a signed record every later one must be signed (checked
with or without the key), and with the key set every record must carry a signature valid for it.
`sign_unsigned` adopts a key for a chain written before it: it signs only a chain with no signature yet.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

KEY_ENV = "TRUTHPLANE_SIGNING_KEY"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://truthplane.dev/attestation/execution/v1"
SUFFIX = ".intoto.json"
UNSIGNED = "attestation is not signed"
UNSIGNED_WITH_KEY = (f"not signed, but {KEY_ENV} is set: every record must be signed (its signature was "
                     "removed, or it was written before the key was set: `truthplane verify --sign` signs a "
                     "chain that holds no signature yet)")


def signing_key() -> bytes | None:
    value = os.environ.get(KEY_ENV, "")
    return value.encode("utf-8") if value else None


def key_id(key: bytes) -> str:
    return "hmac-sha256:" + hashlib.sha256(b"truthplane-keyid:" + key).hexdigest()[:16]


def _pae(payload_type: str, body: bytes) -> bytes:
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def _mac(key: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(key, _pae(PAYLOAD_TYPE, body), hashlib.sha256).digest()).decode("ascii")


def statement(record: dict[str, Any], file_name: str, file_sha256: str) -> dict[str, Any]:
    subjects: list[dict[str, Any]] = [{"name": file_name, "digest": {"sha256": file_sha256}}]
    commits = sorted({str(task.get("git_evidence", {}).get("commit_sha")) for task in record.get("tasks", [])
                      if isinstance(task, dict) and (task.get("git_evidence") or {}).get("commit_sha")})
    subjects += [{"name": f"git-commit:{sha}", "digest": {"gitCommit": sha}} for sha in commits]
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "run_id": record.get("run_id"), "kind": record.get("kind"), "sequence": record.get("sequence"),
            "record_hash": record.get("record_hash"), "previous_hash": record.get("previous_hash"),
            "overall_verdict": record.get("overall_verdict"),
            "start_time": record.get("start_time"), "end_time": record.get("end_time"),
        },
    }


def envelope(record: dict[str, Any], file_name: str, file_sha256: str, key: bytes | None) -> str:
    body = _body(statement(record, file_name, file_sha256))
    return _render(body, [{"keyid": key_id(key), "sig": _mac(key, body)}] if key else [])


def _body(statement_document: dict[str, Any]) -> bytes:
    return json.dumps(statement_document, sort_keys=True, separators=(",", ":")).encode()


def _render(body: bytes, signatures: list[Any]) -> str:
    document = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(body).decode("ascii"),
        "signatures": signatures,
    }
    return json.dumps(document, indent=2) + "\n"


def check(text: str, record: dict[str, Any], file_name: str, file_sha256: str,
          key: bytes | None) -> tuple[list[str], list[str]]:
    """(problems, notes) of an envelope against the execution file it sits beside."""
    try:
        document = json.loads(text)
        body = base64.b64decode(document["payload"], validate=True)
        payload = json.loads(body)
        signatures = list(document.get("signatures") or [])
    except (ValueError, KeyError, TypeError) as exc:
        return [f"not a readable DSSE envelope ({type(exc).__name__})"], []
    problems, notes = [], []
    if document.get("payloadType") != PAYLOAD_TYPE or payload.get("_type") != STATEMENT_TYPE:
        problems.append("payloadType or _type is not an in-toto Statement v1")
    if payload != statement(record, file_name, file_sha256):
        problems.append("the statement does not match the execution file (subject digest or predicate differs)")
    elif text != _render(_body(payload), signatures):
        problems.append("bytes differ from the envelope as written (reformatted or edited)")
    if not signatures and key is not None:
        problems.append(UNSIGNED_WITH_KEY)
    elif not signatures:
        notes.append(UNSIGNED)
    elif key is None:
        notes.append(f"attestation is signed but {KEY_ENV} is not set: signature not checked")
    else:
        expected = {"keyid": key_id(key), "sig": _mac(key, body)}
        if not any(hmac.compare_digest(json.dumps(s, sort_keys=True), json.dumps(expected, sort_keys=True))
                   for s in signatures if isinstance(s, dict)):
            problems.append(f"no signature is valid for the key in {KEY_ENV}")
        else:
            notes.append("attestation signature valid")
    return problems, notes


def is_signed(text: str) -> bool | None:
    """Whether an envelope carries any signature; None when it is not a readable envelope."""
    try:
        document = json.loads(text)
        return bool(document["signatures"]) if isinstance(document, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def sign(text: str, key: bytes) -> str:
    """The envelope `text` with a signature by `key` (its statement and bytes otherwise unchanged)."""
    document = json.loads(text)
    body = base64.b64decode(document["payload"], validate=True)
    return _render(body, [{"keyid": key_id(key), "sig": _mac(key, body)}])
