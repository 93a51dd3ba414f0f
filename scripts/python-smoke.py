#!/usr/bin/env python3
"""Smoke test of a files-api deployment with the official openai Python client.

Usage:
    python3 scripts/python-smoke.py [BASE_URL] [API_KEY]

BASE_URL (e.g. http://127.0.0.1:3000/v1 or .../v1/openai) defaults to $FILES_API_BASE_URL and
API_KEY to $FILES_API_KEY. The script uploads three small files, lists them (two per page, so the
client paginates), retrieves and downloads one, deletes all three, and checks that a deleted file
raises openai.NotFoundError and a fine-tune upload openai.BadRequestError. It prints one JSON
summary on stdout and exits 0 when every check passed, 1 when one failed, 2 on bad usage and 3
when the openai package cannot be imported. It deletes what it created, even on failure.
"""

import hashlib
import json
import os
import re
import sys
import traceback

try:
    import openai
except ImportError as error:  # pragma: no cover - reported to the caller, who must install it
    sys.stderr.write(
        f"cannot import the openai package ({error}). Install it with:\n"
        "  pip install --target .cache/python-openai openai\n"
        "and put that directory on PYTHONPATH (FILES_TEST_PYTHONPATH for the Jest e2e tier).\n"
    )
    sys.exit(3)

FILE_COUNT = 3
PAGE_SIZE = 2
EXPIRES_AFTER = {"anchor": "created_at", "seconds": 3600}


def content_of(index):
    """Distinct content per file: JSONL lines, then binary bytes (a text-mangling client would show)."""
    lines = "".join(
        json.dumps({"custom_id": f"smoke-{index}-{n}", "method": "POST", "url": "/v1/chat/completions"}) + "\n"
        for n in range(200)
    )
    return lines.encode() + bytes(range(256)) * 64 + os.urandom(4096)


def error_summary(error):
    return {
        "exception": type(error).__name__,
        "status_code": getattr(error, "status_code", None),
        "type": getattr(error, "type", None),
        "code": getattr(error, "code", None),
        "param": getattr(error, "param", None),
        "message": str(getattr(error, "message", error)),
    }


class Wire:
    """Records each request the client sends, and the order of the parts of each multipart form."""

    def __init__(self):
        self.requests = []
        self.form_orders = []

    def hook(self, request):
        self.requests.append(f"{request.method} {request.url.raw_path.decode()}")
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            # Reading a small form here buffers it; it is sent unchanged.
            body = request.read()
            self.form_orders.append(re.findall(rb'Content-Disposition: form-data; name="([^"]+)"', body))


def main(argv):
    base_url = argv[1] if len(argv) > 1 else os.environ.get("FILES_API_BASE_URL")
    api_key = argv[2] if len(argv) > 2 else os.environ.get("FILES_API_KEY")
    if not base_url or not api_key:
        sys.stderr.write(__doc__)
        return 2

    wire = Wire()
    client = openai.OpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,
        timeout=60,
        http_client=openai.DefaultHttpxClient(event_hooks={"request": [wire.hook]}),
    )
    summary = {"openai_version": openai.__version__, "base_url": base_url, "failures": []}
    failures = summary["failures"]

    def check(condition, what):
        if not condition:
            failures.append(what)

    created = []
    try:
        contents = {}
        for index in range(FILE_COUNT):
            data = content_of(index)
            file = client.files.create(
                file=(f"smoke-{index}.jsonl", data, "application/jsonl"),
                purpose="batch",
                expires_after=EXPIRES_AFTER,
            )
            created.append(file)
            contents[file.id] = data
            check(file.bytes == len(data), f"{file.id}: bytes {file.bytes} != {len(data)}")
            check(file.expires_at == file.created_at + EXPIRES_AFTER["seconds"], f"{file.id}: expires_at")
        summary["created"] = [f.model_dump() for f in created]

        before_list = len(wire.requests)
        listed = [f.id for f in client.files.list(limit=PAGE_SIZE)]
        summary["listed_ids"] = listed
        summary["list_requests"] = len(wire.requests) - before_list
        ours = [i for i in listed if i in contents]
        check(ours == [f.id for f in reversed(created)], "list: created files not all listed, newest first")
        check(len(set(listed)) == len(listed), "list: duplicates")

        target = created[0]
        retrieved = client.files.retrieve(target.id)
        summary["retrieved"] = retrieved.model_dump()
        check(retrieved == target, "retrieve differs from create")

        downloaded = client.files.content(target.id).content
        summary["content"] = {
            "bytes": len(downloaded),
            "sha256": hashlib.sha256(downloaded).hexdigest(),
            "expected_sha256": hashlib.sha256(contents[target.id]).hexdigest(),
        }
        check(downloaded == contents[target.id], "downloaded content differs")

        summary["deleted"] = []
        for file in list(created):
            result = client.files.delete(file.id)
            summary["deleted"].append(result.model_dump())
            check(result.deleted is True and result.id == file.id, f"{file.id}: delete result {result}")
            created.remove(file)

        try:
            client.files.retrieve(target.id)
            check(False, "retrieve of a deleted file did not raise")
        except openai.NotFoundError as error:
            summary["not_found"] = error_summary(error)

        try:
            client.files.create(file=("tune.jsonl", b'{"prompt":"p"}\n'), purpose="fine-tune")
            check(False, "fine-tune upload did not raise")
        except openai.BadRequestError as error:
            summary["fine_tune"] = error_summary(error)
    except Exception as error:  # the summary still goes out, naming what broke
        failures.append(f"unexpected {type(error).__name__}: {error}")
        summary["traceback"] = traceback.format_exc()
    finally:
        for file in created:
            try:
                client.files.delete(file.id)
            except Exception as error:  # best effort; reported
                failures.append(f"cleanup of {file.id}: {error}")
        client.close()

    summary["form_field_order"] = [[name.decode() for name in order] for order in wire.form_orders]
    summary["ok"] = not failures
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
