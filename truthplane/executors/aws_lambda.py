"""Run jobs in an AWS Lambda function whose handler ships inside truthplane
(`truthplane.executors.lambda_handler.handler`, deployed from truthplane/executors/lambda/).

truthplane.toml::

    [executors.lambda]
    function_name = "truthplane-sandbox"   # or an ARN
    region = "eu-west-1"                   # else the standard AWS chain (AWS_REGION, profile)
    profile = "sandbox"                    # optional; credentials come the standard AWS way
    endpoint_url = "http://127.0.0.1:9000" # only for the Runtime Interface Emulator
    concurrency = 4                        # default 4; 1 with endpoint_url (the emulator runs one at a time)

What a function can and cannot enforce: the job's timeout and output cap, yes (the timeout is cut
to the function's own Timeout, with a note); memory is the function's MemorySize, whatever the job
asks; network egress is whatever the function's VPC allows. A function that itself times out gives
a JobResult with timed_out=True; one that is killed gives oom_killed=True (the usual cause is
MemorySize). Missing function, throttling, no credentials, an unreachable endpoint: ExecutorError.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from truthplane.errors import ExecutorError
from truthplane.executors import _transfer
from truthplane.executors._jobdir import OutputCap
from truthplane.executors.interface import Executor
from truthplane.executors.preflight import preflight_untrusted
from truthplane.executors.jobs import Job, JobResult
from truthplane.models import ToolInfo
from truthplane.registry import install_hint, require

# a synchronous invoke takes at most 6 MB of request and gives at most 6 MB of response
PAYLOAD_LIMIT = 6 * 1024 * 1024
# two base64'd streams must fit in one response: 2 MB each leaves room for the JSON around them
RESPONSE_STREAM_CAP = 2 * 1024 * 1024
DEFAULT_FUNCTION = "truthplane-sandbox"
EVENT_VERSION = 1


def build_event(job: Job) -> tuple[dict[str, Any], list[str]]:
    """The handler's event for a job, and notes about limits the function cannot honour as asked."""
    notes = []
    cap = job.limits.max_output_bytes
    if cap > RESPONSE_STREAM_CAP:
        cap = RESPONSE_STREAM_CAP
        notes.append(f"lambda: output capped at {RESPONSE_STREAM_CAP} bytes per stream (6 MB response limit)")
    if not job.limits.network:
        notes.append("lambda: network is not cut per job: egress is whatever the function's VPC allows")
    archive = _transfer.pack(job.source_dir, job.files) if (job.source_dir or job.files) else b""
    event = {
        "truthplane": EVENT_VERSION,
        "command": job.command,
        "env": job.env,
        "workdir": job.workdir,
        "timeout_s": job.limits.timeout_s,
        "max_output_bytes": cap,
        "archive_b64": base64.b64encode(archive).decode("ascii"),
        "stdin_b64": base64.b64encode(job.stdin).decode("ascii") if job.stdin else "",
    }
    return event, notes


def encode_event(event: dict[str, Any]) -> bytes:
    payload = json.dumps(event, separators=(",", ":")).encode("utf-8")
    if len(payload) > PAYLOAD_LIMIT:
        raise ExecutorError(
            f"the job is {_transfer.human_size(len(payload))} after compression and a synchronous Lambda invoke "
            f"takes at most {_transfer.human_size(PAYLOAD_LIMIT)}: send fewer files, or use the ssh or docker executor"
        )
    return payload


def _stream(payload: dict[str, Any], name: str, limit: int) -> tuple[str, bool]:
    cap = OutputCap(limit)
    cap.kept = bytearray(base64.b64decode(payload.get(f"{name}_b64", "")))
    cap.total = int(payload.get(f"{name}_total", len(cap.kept)))
    return cap.text()


class LambdaExecutor(Executor):
    name = "lambda"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self._client: Any = None

    @property
    def concurrency(self) -> int:
        # the emulator is one execution environment: it drops a second invocation while one runs
        return int(self.options.get("concurrency", 1 if self.options.get("endpoint_url") else 4))

    @property
    def function_name(self) -> str:
        return str(self.options.get("function_name", DEFAULT_FUNCTION))

    @classmethod
    def available(cls, options: dict[str, Any] | None = None) -> ToolInfo:
        try:
            import boto3
        except ImportError:
            return ToolInfo(name=cls.name, installed=False, reason=f"boto3 is not installed: {install_hint('boto3')}")
        options = options or {}
        target = options.get("endpoint_url") or f"function {options.get('function_name', DEFAULT_FUNCTION)}"
        return ToolInfo(name=cls.name, installed=True, version=boto3.__version__, path=str(target))

    def _get_client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config as BotoConfig
            from botocore.exceptions import BotoCoreError

            opts = self.options
            try:
                session = boto3.session.Session(profile_name=opts.get("profile"), region_name=opts.get("region"))
                self._client = session.client(
                    "lambda",
                    endpoint_url=opts.get("endpoint_url"),
                    aws_access_key_id=opts.get("aws_access_key_id"),
                    aws_secret_access_key=opts.get("aws_secret_access_key"),
                    config=BotoConfig(
                        retries={"max_attempts": int(opts.get("retries", 0)), "mode": "standard"},
                        connect_timeout=float(opts.get("connect_timeout_s", 5)),
                        read_timeout=float(opts.get("read_timeout_s", 910)),  # 900 s is Lambda's longest
                        max_pool_connections=max(10, self.concurrency),
                    ),
                )
            except BotoCoreError as exc:
                raise ExecutorError(f"lambda: cannot set up the AWS client: {exc}; check region and profile") from None
        return self._client

    async def run(self, job: Job) -> JobResult:
        require("boto3", "botocore", needed_by="the lambda executor")
        event, notes = build_event(job)
        payload = encode_event(event)
        started = time.monotonic()
        response = await asyncio.to_thread(self._invoke, payload)
        duration = time.monotonic() - started
        result = self._result(job, response, notes, duration, event["max_output_bytes"])
        result.preflight = preflight_untrusted(job)
        return result

    def _invoke(self, payload: bytes) -> tuple[str | None, dict[str, Any]]:
        """(FunctionError or None, the decoded response payload); AWS errors become ExecutorError here."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._get_client()
        try:
            response = client.invoke(FunctionName=self.function_name, InvocationType="RequestResponse", Payload=payload)
            body = response["Payload"].read()
        except ClientError as exc:
            raise ExecutorError(self._client_error_message(exc)) from None
        except BotoCoreError as exc:
            raise ExecutorError(self._transport_error_message(exc)) from None
        try:
            decoded = json.loads(body) if body else {}
        except ValueError:
            # the emulator says "Task timed out after 3.00 seconds" as plain text, AWS as JSON
            text = body[:500].decode("utf-8", errors="replace")
            return response.get("FunctionError") or "Unhandled", {"errorMessage": text}
        return response.get("FunctionError"), decoded if isinstance(decoded, dict) else {"error": repr(decoded)}

    def _client_error_message(self, exc: Any) -> str:
        code = exc.response.get("Error", {}).get("Code", "")
        text = exc.response.get("Error", {}).get("Message", str(exc))
        region = self._client.meta.region_name if self._client is not None else "?"
        if code == "ResourceNotFoundException":
            return (f"lambda: function {self.function_name} does not exist in {region}: deploy "
                    "truthplane/executors/lambda/template.yaml (sam deploy) or set function_name in [executors.lambda]")
        if code in ("TooManyRequestsException", "ThrottlingException"):
            return (f"lambda: {self.function_name} is throttled ({text}): lower [executors.lambda] concurrency or "
                    f"retry later")
        if code == "RequestTooLargeException":
            return f"lambda: the job is too large for a synchronous invoke ({text}): send fewer files"
        if code in ("AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"):
            return (f"lambda: AWS refused the call ({code}: {text}): check the credentials and lambda:InvokeFunction "
                    f"permission")
        return f"lambda: invoking {self.function_name} failed ({code or 'error'}: {text})"

    def _transport_error_message(self, exc: Any) -> str:
        from botocore.exceptions import NoCredentialsError, NoRegionError, ReadTimeoutError

        if isinstance(exc, NoCredentialsError):
            return "lambda: no AWS credentials found: set them the standard AWS way (AWS_PROFILE, ~/.aws, env)"
        if isinstance(exc, NoRegionError):
            return "lambda: no AWS region: set region in [executors.lambda] or AWS_REGION"
        if isinstance(exc, ReadTimeoutError):
            return f"lambda: no answer from {self.function_name} in time: raise read_timeout_s in [executors.lambda]"
        from botocore.exceptions import ConnectionClosedError

        where = self.options.get("endpoint_url")
        if where and isinstance(exc, ConnectionClosedError):
            return (f"lambda: {where} closed the connection ({exc}): an emulator runs one invocation at a time, "
                    "so set concurrency = 1 in [executors.lambda]")
        return (f"lambda: cannot reach {where or 'AWS Lambda'} ({exc}): check the network, or start the emulator at "
                f"endpoint_url")

    def _result(self, job: Job, response: tuple[str | None, dict[str, Any]], notes: list[str],
                duration: float, cap: int) -> JobResult:
        function_error, payload = response
        base: dict[str, Any] = {"executor": self.name, "node": f"lambda:{self.function_name}", "duration_s": duration}
        if function_error:
            message = str(payload.get("errorMessage", payload))
            if "timed out" in message:
                return JobResult(
                    returncode=None,
                    timed_out=True,
                    **base,
                    notes=[*notes, f"lambda: the function itself timed out ({message}): raise its Timeout"],
                )
            if "signal: killed" in message or "Runtime exited" in message:
                return JobResult(
                    returncode=None,
                    oom_killed=True,
                    **base,
                    notes=[*notes, f"lambda: the function was killed ({message}); usually its MemorySize is exceeded"],
                )
            raise ExecutorError(f"lambda: the function failed ({payload.get('errorType', 'error')}: {message}); "
                                "is it running truthplane's handler at this version?")
        if "error" in payload:
            raise ExecutorError(f"lambda: the handler could not run the job: {payload['error']}")
        if payload.get("timeout_capped_s") is not None:
            notes.append(f"lambda: the job's timeout ({job.limits.timeout_s:g} s) was cut to the function's remaining "
                         f"time ({payload['timeout_capped_s']:.1f} s): raise the function's Timeout")
        stdout, stdout_truncated = _stream(payload, "stdout", cap)
        stderr, stderr_truncated = _stream(payload, "stderr", cap)
        return JobResult(
            returncode=payload.get("returncode"), stdout=stdout, stderr=stderr, stdout_truncated=stdout_truncated,
            stderr_truncated=stderr_truncated, timed_out=bool(payload.get("timed_out")), notes=notes, **base,
        )

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
