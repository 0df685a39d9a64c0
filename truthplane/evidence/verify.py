"""`truthplane verify`: re-check execution records from the files and the git objects alone.

Checked, for the whole chain: every record's bytes, field hashes and record hash; sequence numbers
without gaps or forks; each `previous_hash` against the record before; the head file against the files;
every history row against the record it indexes, and a row for every record (the history is an index,
never trusted); no unsigned record after a signed one (a removed signature). For each run
checked: every evidence file's sha256 (a log `gc` removed on purpose is reported, not failed); the
attestation beside the record; and for every recorded commit: the object exists, is not replaced
(refs/replace), hashes to its id, touches exactly the recorded files against its first parent, and
holds blobs whose sha256 are the recorded `sha256_after` (and the parent's, `sha256_before`).
With TRUTHPLANE_SIGNING_KEY set, every attestation must carry a signature valid for it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from truthplane.evidence import attestation

from truthplane.evidence import history, ledger
from truthplane.errors import ExitCode, InputError, UsageError
from truthplane.files import atomic_write
from truthplane.paths import RESULTS_DIR
from truthplane.store import Store, default_path


@dataclass
class VerifyReport:
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unverifiable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unsigned: int = 0
    unsigned_ok: bool = False

    @property
    def exit_code(self) -> int:
        if self.problems:
            return int(ExitCode.REJECT)
        return int(ExitCode.UNVERIFIED) if self.unverifiable else int(ExitCode.OK)

    def as_dict(self) -> dict[str, Any]:
        verdict = {0: "VERIFIED", 1: "TAMPERED", 4: "UNVERIFIED"}[self.exit_code]
        return {"verdict": verdict, "problems": self.problems, "unverifiable": self.unverifiable,
                "checked": self.checked, "notes": self.notes}


class _Unverifiable(Exception):
    """A check that cannot be made here (an object this clone does not have): exit 4, not a failure."""


def _git(root: Path, *args: str) -> bytes | None:
    """Read-only git, blind to refs/replace so a replacement cannot stand in for a recorded object."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C",
           "GIT_NO_REPLACE_OBJECTS": "1"}
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, env=env, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _object_id(kind: bytes, content: bytes) -> str:
    return hashlib.sha1(kind + b" %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def blob_sha256(root: Path, commit: str, path: str) -> tuple[str | None, str | None]:
    """(sha256 of the file in `commit`, or None when absent; a problem, or None)."""
    spec = _git(root, "rev-parse", "--verify", "-q", f"{commit}:{path}")
    if spec is None:
        return None, None
    blob_id = spec.decode().strip()
    content = _git(root, "cat-file", "blob", blob_id)
    if content is None:
        return None, f"blob {blob_id} of {path} cannot be read"
    if _object_id(b"blob", content) != blob_id:
        return None, f"blob {blob_id} of {path} does not hash to its id (the object file was altered)"
    return hashlib.sha256(content).hexdigest(), None


def check_commit(root: Path, sha: str, modifications: list[dict[str, Any]]) -> list[str]:
    short = sha[:12]
    replaced = _git(root, "for-each-ref", "--format=%(objectname)", f"refs/replace/{sha}")
    problems = []
    if replaced and replaced.strip():
        problems.append(f"commit {short} is replaced by {replaced.decode().strip()[:12]} (refs/replace): "
                        "git shows other content under the recorded id")
    raw = _git(root, "cat-file", "commit", sha)
    if raw is None:
        return [*problems, f"commit {short} does not exist in this repository"]
    if _object_id(b"commit", raw) != sha:
        return [*problems, f"commit {short}: its object does not hash to its id (the object file was altered)"]
    header = raw.split(b"\n\n", 1)[0].decode("utf-8", errors="replace").splitlines()
    parents = [line.split()[1] for line in header if line.startswith("parent ")]
    parent = parents[0] if parents else None
    if parent and _git(root, "cat-file", "-e", f"{parent}^{{commit}}") is None:
        raise _Unverifiable(f"commit {short}: its parent {parent[:12]} is not in this repository (a shallow clone?): "
                            "git fetch --unshallow, then verify again")
    listing = _git(root, "diff-tree", "-r", "--no-renames", "-z", "--name-only", "--no-commit-id",
                   *([parent, sha] if parent else ["--root", sha]))
    if listing is None:
        return [*problems, f"commit {short}: its tree cannot be read"]
    changed = {p.decode("utf-8", errors="surrogateescape") for p in listing.split(b"\0") if p}
    recorded = {str(m.get("file")) for m in modifications}
    for path in sorted(changed - recorded):
        problems.append(f"commit {short} changes {path}, which the record does not list")
    for path in sorted(recorded - changed):
        problems.append(f"commit {short} does not change {path}, which the record lists as modified")
    for mod in modifications:
        path = str(mod.get("file"))
        after, trouble = blob_sha256(root, sha, path)
        before, trouble_before = blob_sha256(root, parent, path) if parent else (None, None)
        problems += [f"commit {short}: {t}" for t in (trouble, trouble_before) if t]
        if not trouble and after != mod.get("sha256_after"):
            problems.append(f"commit {short}: {path} has sha256 {str(after)[:16]}, "
                            f"the record says sha256_after {str(mod.get('sha256_after'))[:16]}")
        if not trouble_before and before != mod.get("sha256_before"):
            problems.append(f"commit {short}: {path} in its parent has sha256 {str(before)[:16]}, "
                            f"the record says sha256_before {str(mod.get('sha256_before'))[:16]}")
    return problems


def _hash(entry: ledger.Entry) -> Any:
    return (entry.record or {}).get("record_hash")


def _chain_problems(root: Path, chain: ledger.Chain, report: VerifyReport) -> dict[int, ledger.Entry]:
    by_sequence: dict[int, list[ledger.Entry]] = {}
    for entry in chain.entries:
        report.problems += [f"{_rel(root, entry.path)}: {name}: {detail}" for name, detail in entry.problems]
        sequence = entry.record.get("sequence") if entry.record else None
        if entry.record is not None and not isinstance(sequence, int):
            report.problems.append(f"{_rel(root, entry.path)}: sequence: missing or not a number")
        elif isinstance(sequence, int):
            by_sequence.setdefault(sequence, []).append(entry)
    for sequence, same in sorted(by_sequence.items()):
        if len(same) > 1:
            names = " and ".join(_rel(root, e.path) for e in same)
            report.problems.append(f"sequence {sequence}: appears in {names} (a forked chain)")
    last = max(by_sequence, default=0)
    for sequence in range(1, last + 1):
        if sequence not in by_sequence:
            report.problems.append(f"sequence {sequence}: record missing from {RESULTS_DIR} (deleted?); "
                                   f"the chain is broken between {sequence - 1} and {sequence + 1}")
            continue
        entry = by_sequence[sequence][0]
        previous = (entry.record or {}).get("previous_hash")
        if sequence == 1 and previous is not None:
            report.problems.append(f"{_rel(root, entry.path)}: previous_hash: the first record links to another")
        elif sequence - 1 in by_sequence and previous != _hash(by_sequence[sequence - 1][0]):
            report.problems.append(f"{_rel(root, entry.path)}: previous_hash: does not match record {sequence - 1} "
                                   f"({_rel(root, by_sequence[sequence - 1][0].path)})")
    head = ledger.read_head_file(root / RESULTS_DIR)
    where = f"{RESULTS_DIR}/{ledger.HEAD_FILE}"
    if head is None and by_sequence:
        report.problems.append(f"{where}: missing or unreadable")
    elif head is not None and head.sequence > last:
        report.problems.append(f"{where}: the chain ends at {head.sequence}, but records {last + 1}..{head.sequence} "
                               "are missing (deleted?)")
    elif head is not None and head.sequence < last:
        report.problems.append(f"{where}: says the chain ends at {head.sequence}, but record {last} exists")
    elif head is not None and last and head.record_hash != _hash(by_sequence[last][0]):
        report.problems.append(f"{where}: record_hash differs from record {last}'s")
    elif head is not None and last:
        tail = by_sequence[last][0]
        text = (root / where).read_text(encoding="utf-8", errors="replace")
        if ledger.head_pending(root / RESULTS_DIR):
            report.notes.append(f"{where}: the last append was interrupted after writing its record; "
                                "the next write completes it")
        elif text != ledger.head_text(tail.record or {}, tail.path.name):
            report.problems.append(f"{where}: bytes differ from the head of the chain (record {last})")
    return {sequence: same[0] for sequence, same in by_sequence.items()}


def _sidecar(entry: ledger.Entry) -> Path:
    return entry.path.with_name(entry.path.stem + attestation.SUFFIX)


def _signing_problems(root: Path, chain: dict[int, ledger.Entry], report: VerifyReport) -> None:
    """Once a record is signed, every later one must be: a removed signature is a downgrade, key or no key."""
    first_signed: ledger.Entry | None = None
    for sequence, entry in sorted(chain.items()):
        sidecar = _sidecar(entry)
        if not sidecar.is_file():
            continue  # reported by check_run
        signed = attestation.is_signed(sidecar.read_text(encoding="utf-8", errors="replace"))
        if signed and first_signed is None:
            first_signed = entry
        elif signed is False and first_signed is not None:
            report.problems.append(
                f"{_rel(root, sidecar)}: not signed, but record {(first_signed.record or {}).get('sequence')} "
                f"({_rel(root, _sidecar(first_signed))}) before it is: once a chain holds a signed record every "
                f"later one must be signed (record {sequence}'s signature was removed)")


def sign_unsigned(root: Path) -> list[Path]:
    """Adopt the signing key for a chain written before it: sign every attestation, after the chain verifies
    and only when it holds no signature yet (an unsigned record after a signed one is a removed signature)."""
    key = attestation.signing_key()
    if key is None:
        raise UsageError(f"--sign needs {attestation.KEY_ENV}: set it to the key future runs will sign with")
    chain = ledger.load_chain(root / RESULTS_DIR)
    sidecars = [_sidecar(e) for e in chain.entries]
    if any(p.is_file() and attestation.is_signed(p.read_text(encoding="utf-8", errors="replace")) for p in sidecars):
        raise UsageError("the chain already holds signed records: an unsigned record after them had its signature "
                         "removed, and signing it would vouch for it; `truthplane verify` names it")
    report = verify(root, unsigned_ok=True)
    if report.exit_code:
        raise InputError("the chain does not verify, so it is not signed: `truthplane verify` says why")
    for path in sidecars:
        atomic_write(path, attestation.sign(path.read_text(encoding="utf-8"), key))
    return sidecars


def _history_problems(root: Path, chain: dict[int, ledger.Entry], report: VerifyReport) -> dict[str, float]:
    """Every history row must agree with the record it indexes, and every record must have its rows."""


    where = _rel(root, default_path(root))
    if not default_path(root).is_file():
        if chain:
            report.problems.append(f"{where}: missing, but the chain holds {len(chain)} record(s): "
                                   "the history was deleted")
        return {}
    by_run = {str(e.record.get("run_id")): e for e in chain.values() if e.record}
    pending = ledger.head_pending(root / RESULTS_DIR)
    with Store.open(root=root) as store:
        pruned = history.pruned_paths(store)

        def check(db: Any) -> None:
            for run_id, sequence, path in db.execute("SELECT run_id, sequence, path FROM runs ORDER BY sequence"):
                if str(run_id) not in by_run:
                    report.problems.append(f"{path}: missing (the history has run {run_id}, sequence {sequence})")
            for run_id, entry in by_run.items():
                name = _rel(root, entry.path)
                if not db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                    if pending == entry.path.name:
                        report.notes.append(f"{where}: run {run_id}: not recorded yet (its append was interrupted; "
                                            "the next write completes it)")
                        continue
                    report.problems.append(f"{where}: run {run_id}: no row for {name} (the row was deleted)")
                    continue
                for line in history.row_differences(
                    db, entry.record or {}, name, hashlib.sha256(entry.data).hexdigest()
                ):
                    report.problems.append(f"{where}: run {run_id}: {line} ({name})")
            for run_id in history.orphan_run_ids(db):
                report.problems.append(f"{where}: rows of run {run_id}, which has no run row and no record")

        store.read(check)
    return pruned


def check_run(root: Path, entry: ledger.Entry, pruned: dict[str, float], report: VerifyReport) -> None:
    record = entry.record or {}
    name = _rel(root, entry.path)
    before = len(report.problems)
    files = 0
    for item in record.get("evidence_files") or []:
        path = str(item.get("path"))
        target = root / path
        if target.is_file():
            if hashlib.sha256(target.read_bytes()).hexdigest() != item.get("sha256"):
                report.problems.append(f"{path}: sha256 differs from the one {name} records (evidence_files)")
            files += 1
        elif path in pruned and item.get("kind") == "log":
            report.notes.append(f"{path}: removed by `truthplane gc` (its sha256 stays in {name})")
        else:
            report.problems.append(f"{path}: missing (recorded in {name} evidence_files)")
    sidecar = _sidecar(entry)
    if not sidecar.is_file() and ledger.head_pending(entry.path.parent) == entry.path.name:
        report.notes.append(f"{_rel(root, sidecar)}: not written yet (its append was interrupted)")
    elif not sidecar.is_file():
        report.problems.append(f"{_rel(root, sidecar)}: missing (the attestation of {name})")
    else:
        bad, notes = attestation.check(
            sidecar.read_text(encoding="utf-8", errors="replace"),
            record,
            entry.path.name,
            hashlib.sha256(entry.data).hexdigest(),
            attestation.signing_key(),
        )
        if report.unsigned_ok and attestation.UNSIGNED_WITH_KEY in bad:
            bad, notes = [b for b in bad if b != attestation.UNSIGNED_WITH_KEY], [*notes, attestation.UNSIGNED]
        report.problems += [f"{_rel(root, sidecar)}: {b}" for b in bad]
        report.unsigned += notes.count(attestation.UNSIGNED)
        report.notes += [f"{_rel(root, sidecar)}: {n}" for n in notes if n != attestation.UNSIGNED]
    commits = uncommitted = 0
    for n, task in enumerate(t for t in record.get("tasks") or [] if isinstance(t, dict)):
        evidence = task.get("git_evidence") or {}
        sha = evidence.get("commit_sha")
        where = f"{name}: tasks[{n}] ({task.get('task_id')})"
        if not sha:
            uncommitted += 1 if task.get("modifications") else 0
            branch_commit = evidence.get("branch_commit")
            if branch_commit and _git(root, "cat-file", "-e", f"{branch_commit}^{{commit}}") is not None:
                try:  # the task's own branch: its commit holds exactly the recorded change too
                    report.problems += [
                        f"{where}: branch {evidence.get('branch')}: {p}"
                        for p in check_commit(root, str(branch_commit), list(task.get("modifications") or []))
                    ]
                except _Unverifiable as exc:
                    report.unverifiable.append(f"{where}: {exc}")
            elif branch_commit:
                report.notes.append(f"{where}: the commit of branch {evidence.get('branch')} is gone "
                                    "(the branch was deleted and collected): only the record's hashes remain")
            continue
        if _git(root, "rev-parse", "--git-dir") is None:
            report.unverifiable.append(f"{where}: records commit {str(sha)[:12]}, but {root} is not a git "
                                       "repository here (or git is missing)")
            continue
        if _git(root, "cat-file", "-e", f"{sha}^{{commit}}") is None and _shallow(root):
            report.unverifiable.append(f"{where}: commit {str(sha)[:12]} is not in this shallow clone: "
                                       "git fetch --unshallow, then verify again")
            continue
        if not task.get("modifications") and str(task.get("carried_over_from") or "").startswith("commit "):
            report.problems += [f"{where}: {p}" for p in _carried_without_change(root, str(sha), task)]
            report.notes.append(f"{where}: carried over by an older truthplane without its change: commit "
                                f"{str(sha)[:12]} and its task trailer are checked, its files are not")
            commits += 1
            continue
        try:
            report.problems += [
                f"{where}: {p}" for p in check_commit(root, str(sha), list(task.get("modifications") or []))
            ]
        except _Unverifiable as exc:
            report.unverifiable.append(f"{where}: {exc}")
            continue
        commits += 1
    if len(report.problems) == before:
        extra = f", {uncommitted} uncommitted candidate(s) (their hashes are in the record only)" if uncommitted else ""
        report.checked.append(f"run {record.get('run_id')} (sequence {record.get('sequence')}, {name}): "
                              f"record, chain link, attestation, {files} evidence file(s), {commits} commit(s){extra}")


def _carried_without_change(root: Path, sha: str, task: dict[str, Any]) -> list[str]:
    """A resume before carried tasks repeated their evidence recorded the commit alone: it must exist, be
    intact and carry the task's trailer (its change was checked in the record that made it)."""
    from truthplane.evidence.ledger import TASK_TRAILER

    raw = _git(root, "cat-file", "commit", sha)
    if raw is None:
        return [f"commit {sha[:12]} does not exist in this repository"]
    if _object_id(b"commit", raw) != sha:
        return [f"commit {sha[:12]}: its object does not hash to its id (the object file was altered)"]
    trailer = f"{TASK_TRAILER}: {task.get('task_id')} {task.get('digest')}"
    if trailer not in raw.decode("utf-8", errors="replace").splitlines():
        return [f"commit {sha[:12]} does not carry the trailer {trailer!r}"]
    return []


def _shallow(root: Path) -> bool:
    return (_git(root, "rev-parse", "--is-shallow-repository") or b"").strip() == b"true"


def _rel(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def verify(root: Path, target: str | None = None, *, unsigned_ok: bool = False) -> VerifyReport:
    """Check the whole chain, then every run (or only `target`: a run id, a prefix of one, or a file).
    `unsigned_ok`: unsigned records pass with the key set (only while adopting a key: `sign_unsigned`)."""
    report = VerifyReport(unsigned_ok=unsigned_ok)
    chain = ledger.load_chain(root / RESULTS_DIR)
    if not chain.entries and target is None:
        raise InputError(f"no chained execution records in {root / RESULTS_DIR}: nothing to verify")
    if chain.legacy:
        report.notes.append(f"{len(chain.legacy)} record(s) written before the ledger existed are not chained")
    by_sequence = _chain_problems(root, chain, report)
    _signing_problems(root, by_sequence, report)
    pruned = _history_problems(root, by_sequence, report)
    selected = list(by_sequence.values())
    if target is not None:
        selected = _select(root, target, selected, report)
    for entry in sorted(selected, key=lambda e: (e.record or {}).get("sequence", 0)):
        check_run(root, entry, pruned, report)
    if report.unsigned:
        report.notes.append(f"{report.unsigned} attestation(s) not signed (set {attestation.KEY_ENV} to sign new ones)")
    return report


def _select(root: Path, target: str, entries: list[ledger.Entry], report: VerifyReport) -> list[ledger.Entry]:
    path = Path(target)
    if path.is_file():
        own = ledger.check_entry(path, path.read_bytes())
        if own.record is None or "record_hash" not in own.record:
            raise InputError(f"{target} is not a chained execution record")
        same = [e for e in entries if e.record and e.record.get("run_id") == own.record.get("run_id")]
        if path.resolve() not in {e.path.resolve() for e in entries}:
            report.problems += [f"{target}: {name}: {detail}" for name, detail in own.problems]
            if not same:
                report.problems.append(f"{target}: run {own.record.get('run_id')} is not in the chain of {root}")
            elif same[0].record and same[0].record.get("record_hash") != own.record.get("record_hash"):
                report.problems.append(
                    f"{target}: record_hash differs from the chained record {_rel(root, same[0].path)}"
                )
        return same or [own]
    matches = [e for e in entries if str((e.record or {}).get("run_id", "")).startswith(target)]
    if not matches and any(target in problem for problem in report.problems):
        return []  # its record file is gone: already a problem
    if not matches:
        raise UsageError(f"no run {target!r} among the execution records of {root}: `truthplane history` lists them")
    if len(matches) > 1 and not any((e.record or {}).get("run_id") == target for e in matches):
        raise UsageError(f"{target!r} matches {len(matches)} runs: give more of the run id")
    return [e for e in matches if (e.record or {}).get("run_id") == target] or matches


def checked(store: Store, root: Path, run: dict[str, Any]) -> dict[str, Any]:
    """The run row with its figures as its record says them, and `matches_record` (false, with `mismatch`,
    when the rows differ from the record or the record fails its own hashes: `verify` fails on either)."""
    path = str(run["path"])
    target = root / path
    trouble: list[str] = []
    record: dict[str, Any] | None = None
    if Path(path).parent.as_posix() != RESULTS_DIR or not target.is_file():
        trouble.append(f"its record {path} is missing")
    else:
        data = target.read_bytes()
        entry = ledger.check_entry(target, data)
        record = entry.record
        if record is None or entry.problems or "record_hash" not in record:
            trouble.append(f"its record {path} fails its own hashes")
            record = None
        elif record.get("run_id") != run["run_id"]:
            trouble.append(f"{path} is the record of run {record.get('run_id')}")
            record = None
        else:
            sha = hashlib.sha256(data).hexdigest()
            trouble += store.read(lambda db: history.row_differences(db, record, path, sha))
            expected = history.expected_rows(record, path, sha)
            run.update({k: v for k, v in expected["runs"][(run["run_id"],)].items() if k in run})
    return {**run, "matches_record": not trouble, "mismatch": trouble}


def list_runs(store: Store, root: Path, *, kind: str | None = None, verdict: str | None = None,
              since: float | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Newest first, each with its cost (candidates' cost_usd, or llm_usage rows of the same run_id), its
    figures read from its record (`checked`), and filtered on them."""
    sql = (
        f"SELECT {', '.join('r.' + c for c in history.RUN_COLUMNS)},"
        " (SELECT SUM(c.cost_usd) FROM candidates c WHERE c.run_id = r.run_id) AS candidate_cost,"
        " (SELECT SUM(u.cost_usd) FROM llm_usage u WHERE u.run_id = r.run_id) AS usage_cost,"
        " (SELECT COUNT(*) FROM llm_usage u WHERE u.run_id = r.run_id) AS llm_calls"
        " FROM runs r" + (" WHERE r.recorded_at >= ?" if since is not None else "") + " ORDER BY r.sequence DESC"
    )
    rows = store.read(lambda db: db.execute(sql, [] if since is None else [since]).fetchall())
    out = []
    for row in rows:
        item = checked(store, root, dict(row))
        if (kind and item["kind"] != kind) or (verdict and item["overall_verdict"] != verdict.upper()):
            continue
        usage, candidate = item.pop("usage_cost"), item.pop("candidate_cost")
        item["cost_usd"] = usage if usage is not None else candidate
        out.append(item)
        if limit and len(out) >= limit:
            break
    return out
