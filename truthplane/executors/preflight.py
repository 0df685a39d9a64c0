"""Preflight: an AST check of Python code before it runs, flagging what generated code has no
business doing (shelling out, dynamic exec, sockets, ctypes, writes outside its workspace,
`__import__` tricks), with line numbers.

It informs the verdict and the reviewer; it never blocks. The sandbox, not this check, is the
defence: anything can be obfuscated past an AST walk.
"""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field

from truthplane import pyparse
from truthplane.executors.jobs import Job, PreflightFinding
from truthplane.models import Severity

SHELL_CALLS = {
    "subprocess.run",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
    "subprocess.Popen",
}
ALWAYS_SHELL = {"subprocess.getoutput", "subprocess.getstatusoutput", "os.popen", "os.system"}
OS_EXEC_PREFIXES = ("os.exec", "os.spawn", "os.posix_spawn")
NETWORK_MODULES = {"socket", "ssl", "urllib.request", "http.client", "requests", "httpx", "aiohttp", "ftplib",
                   "smtplib", "telnetlib", "paramiko", "asyncssh"}
NATIVE_MODULES = {"ctypes", "cffi", "_ctypes"}
DYNAMIC_CODE = {"exec", "eval", "compile", "builtins.exec", "builtins.eval", "builtins.compile"}
IMPORT_TRICKS = {"__import__", "builtins.__import__", "importlib.import_module", "importlib.__import__"}
WRITE_MODES = set("wax+")
DESTRUCTIVE = {
    "shutil.rmtree",
    "os.remove",
    "os.unlink",
    "os.rmdir",
    "os.removedirs",
    "os.truncate",
    "os.chmod",
    "os.chown",
    "shutil.move",
    "shutil.copy",
    "shutil.copy2",
    "shutil.copyfile",
    "shutil.copytree",
    "os.rename",
    "os.replace",
}
PATH_WRITERS = {"write_text", "write_bytes", "unlink", "rmdir", "touch", "mkdir", "chmod", "rename", "replace"}

SEVERITY = {
    "os-system": Severity.HIGH, "shell-true": Severity.HIGH, "os-exec": Severity.MEDIUM, "dynamic-exec": Severity.HIGH,
    "network": Severity.MEDIUM, "native-code": Severity.MEDIUM, "write-outside-workspace": Severity.HIGH,
    "import-trick": Severity.MEDIUM,
}


class PreflightReport(BaseModel):
    findings: list[PreflightFinding] = Field(default_factory=list)
    unparsed: list[str] = Field(default_factory=list, description="files that are not valid Python: path: error")

    @property
    def clean(self) -> bool:
        return not self.findings


def _outside_literal(node: ast.expr | None) -> str | None:
    """A string literal naming a place outside the workspace: absolute, home-relative, or '..'-escaping."""
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        node = node.values[0]
    if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
        return None
    text = node.value
    if text.startswith(("/", "~")) or ".." in PurePosixPath(text).parts:
        return text
    return None


class _Checker(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.aliases: dict[str, str] = {}
        self.findings: list[PreflightFinding] = []

    def flag(self, node: ast.AST, rule: str, message: str) -> None:
        self.findings.append(
            PreflightFinding(
                rule=rule,
                message=message,
                path=self.path,
                line=getattr(node, "lineno", 0),
                column=getattr(node, "col_offset", 0),
                severity=SEVERITY[rule].value,
            )
        )

    def _module_used(self, node: ast.AST, module: str) -> None:
        root = module.split(".")[0]
        if module in NETWORK_MODULES or root in NETWORK_MODULES:
            self.flag(node, "network", f"imports {module}: network access (the sandbox has none by default)")
        if root in NATIVE_MODULES:
            self.flag(node, "native-code", f"imports {module}: native code can bypass Python-level checks")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.aliases[(alias.asname or alias.name).split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )
            self._module_used(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}" if module else alias.name
        if node.level == 0:
            self._module_used(node, module)

    def resolve(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def visit_Call(self, node: ast.Call) -> None:
        name = self.resolve(node.func) or ""
        first = node.args[0] if node.args else None
        keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg}
        if name in ("os.system", "os.popen"):
            self.flag(node, "os-system", f"{name}() runs a shell command")
        elif name in ALWAYS_SHELL:
            self.flag(node, "shell-true", f"{name}() runs its argument through a shell")
        elif name in SHELL_CALLS and "shell" in keywords:
            shell = keywords["shell"]
            if not (isinstance(shell, ast.Constant) and not shell.value):
                self.flag(node, "shell-true", f"{name}(shell=True) runs its command through a shell")
        elif name.startswith(OS_EXEC_PREFIXES):
            self.flag(node, "os-exec", f"{name}() starts another program")
        elif name in DYNAMIC_CODE and first is not None and not isinstance(first, ast.Constant):
            self.flag(node, "dynamic-exec", f"{name.split('.')[-1]}() of a computed string")
        elif name in IMPORT_TRICKS:
            if name.startswith("importlib") and isinstance(first, ast.Constant):
                self._module_used(node, str(first.value))
            else:
                self.flag(node, "import-trick", f"{name}() imports a module chosen at run time")
        elif (
            name in ("getattr", "builtins.getattr")
            and first is not None
            and self.resolve(first) in ("__builtins__", "builtins")
        ):
            self.flag(node, "import-trick", "getattr on builtins reaches functions without naming them")
        elif name in ("socket.socket", "socket.create_connection", "socket.create_server"):
            self.flag(node, "network", f"{name}() opens a socket")
        self._check_writes(node, name, first, keywords)
        self.generic_visit(node)

    def _check_writes(self, node: ast.Call, name: str, first: ast.expr | None, keywords: dict[str, ast.expr]) -> None:
        if name in ("open", "io.open", "builtins.open", "os.open"):
            mode = node.args[1] if len(node.args) > 1 else keywords.get("mode") or keywords.get("flags")
            writes = name == "os.open" or (isinstance(mode, ast.Constant) and isinstance(mode.value, str)
                                           and bool(WRITE_MODES & set(mode.value)))
            target = _outside_literal(first or keywords.get("file"))
            if writes and target:
                self.flag(node, "write-outside-workspace", f"{name}({target!r}) writes outside the workspace")
        elif name in DESTRUCTIVE:
            target = _outside_literal(node.args[-1] if name.startswith("shutil.c") and node.args else first)
            if target:
                self.flag(node, "write-outside-workspace", f"{name}({target!r}) changes files outside the workspace")
        elif isinstance(node.func, ast.Attribute) and node.func.attr in PATH_WRITERS | {"open"}:
            receiver = node.func.value
            if isinstance(receiver, ast.Call) and (self.resolve(receiver.func) or "").endswith(("Path", "PurePath")):
                target = _outside_literal(receiver.args[0] if receiver.args else None)
                mode = node.args[0] if node.args else keywords.get("mode")
                writes = node.func.attr != "open" or (
                    isinstance(mode, ast.Constant) and bool(WRITE_MODES & set(str(mode.value)))
                )
                if target and writes:
                    self.flag(
                        node, "write-outside-workspace", f"Path({target!r}).{node.func.attr}() outside the workspace"
                    )

    def visit_Subscript(self, node: ast.Subscript) -> None:
        holder = node.value
        if (
            isinstance(holder, ast.Attribute)
            and holder.attr == "__dict__"
            and self.resolve(holder.value) in ("builtins", "__builtins__")
        ):
            self.flag(node, "import-trick", "builtins.__dict__[...] reaches functions without naming them")
        elif (
            isinstance(holder, ast.Call)
            and self.resolve(holder.func) in ("globals", "vars")
            and isinstance(node.slice, ast.Constant)
            and node.slice.value == "__builtins__"
        ):
            self.flag(node, "import-trick", "globals()['__builtins__'] reaches functions without naming them")
        self.generic_visit(node)


def preflight_source(source: str | bytes, path: str = "<string>") -> list[PreflightFinding]:
    """Findings for one Python source; raises SyntaxError if it does not parse."""
    checker = _Checker(path)
    checker.visit(pyparse.parse(source, filename=path))
    return sorted(checker.findings, key=lambda f: (f.line, f.column, f.rule))


def preflight_files(files: dict[str, bytes]) -> PreflightReport:
    """Check every .py file in a path -> content mapping (the shape of Job.files)."""
    report = PreflightReport()
    for path in sorted(files):
        if not path.endswith(".py"):
            continue
        try:
            report.findings.extend(preflight_source(files[path], path))
        except (SyntaxError, ValueError) as exc:
            report.unparsed.append(f"{path}: {exc}")
    return report


def preflight_job(job: Job, paths: list[str] | None = None) -> PreflightReport:
    """The job's own files, plus the named repo-relative `paths` from its source_dir (a whole snapshot is not
    scanned)."""
    files = dict(job.files)
    if job.source_dir and paths:
        root = Path(job.source_dir)
        for rel in paths:
            candidate = root / rel
            if rel not in files and candidate.is_file() and not candidate.is_symlink():
                files[rel] = candidate.read_bytes()
    return preflight_files(files)


COMMAND = "<command>"  # Job.untrusted entry: the code given to `python -c` in the job's command


def command_code(command: list[str]) -> str | None:
    """The CODE of a `python... -c CODE` command, else None."""
    if not command or not Path(command[0]).name.startswith("python"):
        return None
    for flag, value in zip(command[1:], command[2:], strict=False):
        if flag == "-c":
            return value
        if not flag.startswith("-"):
            return None  # a script: what follows is its own argv
    return None


def untrusted_scripts(command: list[str]) -> list[str]:
    """What of `python -c CODE` or `python script.py` a job's untrusted list names: COMMAND, or the script."""
    if command_code(command) is not None:
        return [COMMAND]
    if command and Path(command[0]).name.startswith("python"):
        script = next((arg for arg in command[1:] if not arg.startswith("-")), None)
        if script and script.endswith(".py") and not Path(script).is_absolute() and ".." not in Path(script).parts:
            return [script]
    return []


def preflight_untrusted(job: Job) -> list[PreflightFinding]:
    """The preflight of a job's untrusted code (`Job.untrusted`); never raises, never blocks."""
    if not job.untrusted:
        return []
    report = preflight_job(job, [p for p in job.untrusted if p != COMMAND])
    names = set(job.untrusted)
    found = [f for f in report.findings if f.path in names]
    code = command_code(job.command) if COMMAND in names else None
    if code is not None:
        try:
            found += preflight_source(code, "python -c")
        except (SyntaxError, ValueError):
            pass  # python itself will say so
    return found


def _findings_of(path: Path, rel: str) -> list[PreflightFinding]:
    try:
        return preflight_source(path.read_bytes(), rel) if path.is_file() and not path.is_symlink() else []
    except (SyntaxError, ValueError, OSError):
        return []


def preflight_change(before: Path, after: Path, touched: list[str]) -> list[PreflightFinding]:
    """What a change adds: findings in its touched Python files that the same file did not have before."""
    added: list[PreflightFinding] = []
    for rel in sorted(t for t in touched if t.endswith(".py")):
        old = [(f.rule, f.message) for f in _findings_of(before / rel, rel)]
        for finding in _findings_of(after / rel, rel):
            if (finding.rule, finding.message) in old:
                old.remove((finding.rule, finding.message))
            else:
                added.append(finding)
    return added
