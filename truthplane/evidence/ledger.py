"""The hash chain over execution records.

Each record carries `sequence` (1, 2, ...), `previous_hash` (the previous record's `record_hash`, null
for the first), `field_hashes` (sha256 of each top-level field and of each task's fields, so a change
can be pinned to a field) and `record_hash`: sha256 of the record's canonical JSON (keys sorted, no
spaces, UTF-8) without `record_hash` itself. The file holds exactly `render(record)`, so reformatting
a file is detected as well. The chain head is kept three times: in the last record, in
`ledger-head.json` and in the history's `runs` table; `verify` needs none of them to agree
with the others to find out, and trusts none of them alone.

Appends are serialised by the history's write lock (BEGIN IMMEDIATE): two processes writing records
at once get consecutive sequence numbers, each chained to the other.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from truthplane.evidence import attestation
from truthplane.errors import InputError
from truthplane.files import atomic_write
from truthplane.files import MAX_CONFIG_BYTES, MAX_INPUT_BYTES, read_regular_file
from truthplane.paths import RESULTS_DIR, results_dir

HEAD_FILE = "ledger-head.json"
LEDGER_FORMAT = "truthplane-ledger/1"
CHAIN_KEYS = ("ledger_format", "run_id", "sequence", "previous_hash", "field_hashes", "record_hash")

# the trailers of a commit run-all made: the run, and the task (with its digest) whose record it carries
TASK_TRAILER = "Truthplane-Task"
RUN_TRAILER = "Truthplane-Run"


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render(record: dict[str, Any]) -> str:
    """The exact text of an execution file."""
    return json.dumps(record, indent=2) + "\n"


def field_hashes(record: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in record.items():
        if key in CHAIN_KEYS:
            continue
        if key == "tasks" and isinstance(value, list):
            out["tasks"] = sha256_hex(canonical([t.get("task_id") if isinstance(t, dict) else t for t in value]))
            for n, task in enumerate(value):
                for name, part in (task.items() if isinstance(task, dict) else [("", task)]):
                    out[f"tasks[{n}].{name}"] = sha256_hex(canonical(part))
        else:
            out[key] = sha256_hex(canonical(value))
    return out


def record_hash(record: dict[str, Any]) -> str:
    return sha256_hex(canonical({k: v for k, v in record.items() if k != "record_hash"}))


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


@dataclass(frozen=True)
class Head:
    sequence: int = 0
    record_hash: str | None = None


def _head_document(results: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_regular_file(results / HEAD_FILE, MAX_CONFIG_BYTES, InputError).decode("utf-8"))
    except (InputError, ValueError):  # a FIFO planted there is refused, not read forever
        return {}
    return data if isinstance(data, dict) else {}


def _read_head_file(results: Path) -> Head | None:
    """The head the head file names; an append interrupted after writing its record counts as done."""
    data = _head_document(results)
    try:
        head = Head(int(data["sequence"]), str(data["record_hash"]) if data["record_hash"] else None)
    except (KeyError, TypeError, ValueError):
        return None
    pending = _valid_record(results, data.get("pending"))
    if pending is not None and pending[0].get("sequence") == head.sequence + 1:
        return Head(head.sequence + 1, pending[0]["record_hash"])
    return head


def head_pending(results: Path) -> str | None:
    """The record an interrupted append wrote and named in the head file (the next append completes it)."""
    name = _head_document(results).get("pending")
    return str(name) if _valid_record(results, name) is not None else None


def _valid_record(results: Path, name: Any) -> tuple[dict[str, Any], bytes] | None:
    if not isinstance(name, str) or Path(name).name != name or not (results / name).is_file():
        return None
    data = (results / name).read_bytes()
    entry = check_entry(results / name, data)
    if entry.record is None or entry.problems or "record_hash" not in entry.record:
        return None
    return entry.record, data


def _recover(results: Path, db: Any) -> Head:
    """The chain head, finishing an append that a crash interrupted: a record written but missing from the
    head or the history is adopted, its attestation and history row made again."""
    from truthplane.evidence import history

    document = _head_document(results)
    heads = [Head(*history.head(db)), _read_head_file(results) or Head()]
    for name in (document.get("file"), document.get("pending")):
        found = _valid_record(results, name)
        if found is None:
            continue
        record, data = found
        sidecar = results / (Path(str(name)).stem + attestation.SUFFIX)
        if not sidecar.is_file():
            atomic_write(sidecar, attestation.envelope(record, str(name), sha256_hex(data), attestation.signing_key()))
        known = db.execute("SELECT 1 FROM runs WHERE run_id = ? OR sequence = ?",
                           (record.get("run_id"), record.get("sequence"))).fetchone()
        if not known:
            history.record_run(db, record, f"{RESULTS_DIR}/{name}", sha256_hex(data))
        heads.append(Head(int(record["sequence"]), str(record["record_hash"])))
    best = max(heads, key=lambda h: h.sequence)
    return best if best.sequence else _scan_head(results)


def _scan_head(results: Path) -> Head:
    best = Head()
    for entry in load_chain(results).entries:
        if entry.record and isinstance(entry.record.get("sequence"), int) and entry.record["sequence"] > best.sequence:
            best = Head(entry.record["sequence"], entry.record.get("record_hash"))
    return best


def head_text(record: dict[str, Any], file_name: str) -> str:
    """The exact text of the head file when `record` (in `file_name`) is the last of the chain."""
    document = {"sequence": record.get("sequence"), "record_hash": record.get("record_hash"),
                "run_id": record.get("run_id"), "file": file_name}
    return json.dumps(document, indent=2) + "\n"


def _execution_path(results: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    path, n = results / f"execution_{stamp}.json", 1
    while path.exists():
        path, n = results / f"execution_{stamp}_{n}.json", n + 1
    return path


def append(root: Path, record: dict[str, Any]) -> Path:
    """Chain `record` (adding the ledger keys in place), write it, its attestation and the head, record it."""
    from truthplane.evidence import history
    from truthplane.errors import InputError
    from truthplane.store import Store

    results = results_dir(root)
    head_path = results / HEAD_FILE
    record.setdefault("run_id", new_run_id())
    written: list[Path] = []
    store = Store.open(root=root)
    try:
        old_head = head_path.read_bytes() if head_path.is_file() else None
        try:
            with store.write() as db:
                if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (record["run_id"],)).fetchone():
                    raise InputError(
                        f"run {record['run_id']} is already in the history: a new record needs a new run_id"
                    )
                head = _recover(results, db)
                for key in CHAIN_KEYS[2:]:
                    record.pop(key, None)
                record.pop("ledger_format", None)
                record["ledger_format"] = LEDGER_FORMAT
                record["sequence"] = head.sequence + 1
                record["previous_hash"] = head.record_hash
                record["field_hashes"] = field_hashes(record)
                record["record_hash"] = record_hash(record)
                path = _execution_path(results)
                # a crash from here on leaves the record adoptable by the next append (see _recover)
                atomic_write(head_path, json.dumps({"sequence": head.sequence, "record_hash": head.record_hash,
                                                    "pending": path.name}, indent=2) + "\n")
                text = render(record).encode("utf-8")
                atomic_write(path, text)
                written.append(path)
                file_sha = sha256_hex(text)
                sidecar = path.with_name(path.stem + attestation.SUFFIX)
                atomic_write(sidecar, attestation.envelope(record, path.name, file_sha, attestation.signing_key()))
                written.append(sidecar)
                history.record_run(db, record, f"{RESULTS_DIR}/{path.name}", file_sha)
                atomic_write(head_path, head_text(record, path.name))
        except BaseException:
            for item in written:
                item.unlink(missing_ok=True)
            if old_head is None:
                head_path.unlink(missing_ok=True)
            else:
                atomic_write(head_path, old_head)
            raise
    finally:
        store.close()
    return path


@dataclass
class Entry:
    path: Path
    data: bytes
    record: dict[str, Any] | None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field, detail)


@dataclass
class Chain:
    entries: list[Entry]
    legacy: list[Path]  # records written before the ledger existed: no chain keys


def _first_difference(expected: str, actual: str) -> int:
    for n, (a, b) in enumerate(zip(expected.splitlines(), actual.splitlines(), strict=False), start=1):
        if a != b:
            return n
    return min(len(expected.splitlines()), len(actual.splitlines())) + 1


def check_entry(path: Path, data: bytes) -> Entry:
    """Parse one execution file and check it against itself: exact bytes, field hashes, record hash."""
    try:
        text = data.decode("utf-8")
        record = json.loads(text)
    except ValueError as exc:
        return Entry(path, data, None, [("file", f"not a readable JSON record ({exc})")])
    if not isinstance(record, dict):
        return Entry(path, data, None, [("file", "not a JSON object")])
    entry = Entry(path, data, record)
    if "record_hash" not in record:
        return entry
    try:
        if render(record) != text:
            line = _first_difference(render(record), text)
            entry.problems.append(
                ("file", f"bytes differ from the record as written (line {line}: reformatted or edited)")
            )
        stored = record.get("field_hashes")
        recorded: dict[str, Any] = stored if isinstance(stored, dict) else {}
        actual = field_hashes(record)
        for name in sorted(set(recorded) | set(actual)):
            if recorded.get(name) != actual.get(name):
                entry.problems.append((name, "changed after it was recorded" if name in actual else "removed"))
        if record_hash(record) != record["record_hash"]:
            entry.problems.append(("record_hash", "does not match the record's content"))
    except ValueError as exc:
        entry.problems.append(("file", f"cannot be hashed ({exc})"))
    return entry


def load_chain(results: Path) -> Chain:
    entries, legacy = [], []
    for path in sorted(results.glob("execution_*.json")):
        if path.name.endswith(attestation.SUFFIX):
            continue
        if not path.exists():
            continue  # removed since the listing
        try:  # anyone who can write the results directory can plant a FIFO or a device there
            data = read_regular_file(path, MAX_INPUT_BYTES, InputError)
        except InputError:
            entries.append(
                Entry(path, b"", None, [("file", "not a regular file, or unreadable (a FIFO or a device?)")])
            )
            continue
        entry = check_entry(path, data)
        if entry.record is not None and "record_hash" not in entry.record:
            legacy.append(path)
        else:
            entries.append(entry)
    return Chain(entries, legacy)


def read_head_file(results: Path) -> Head | None:
    return _read_head_file(results)
