"""The AWS Lambda handler that LambdaExecutor invokes: `truthplane.executors.lambda_handler.handler`.

The event is what `aws_lambda.build_event` makes: the command, env, limits and the job's files as a
base64 gzip'd tar. The files are unpacked under /tmp, the command runs with the job's timeout (cut to
the function's remaining time) and output cap, and the workspace is removed before returning. Memory
is the function's own MemorySize; a job cannot ask for more. Standard library only, so the image needs
nothing but truthplane's source.
"""

from __future__ import annotations

import tarfile

from truthplane.executors._runner import UnsafeArchive, run_spec

EVENT_VERSION = 1
# leave the runtime this long to clean up and answer before the function's own timeout
RESERVE_MS = 1500


def handler(event: dict, context) -> dict:
    if not isinstance(event, dict) or event.get("truthplane") != EVENT_VERSION:
        return {"error": f"not a truthplane job event (expected truthplane={EVENT_VERSION}): update the function image"}
    remaining_ms = context.get_remaining_time_in_millis() if context is not None else None
    max_timeout_s = None if remaining_ms is None else max(0.0, (remaining_ms - RESERVE_MS) / 1000.0)
    try:
        return run_spec(event, None, None, max_timeout_s)
    except (UnsafeArchive, OSError, tarfile.TarError, ValueError, KeyError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
