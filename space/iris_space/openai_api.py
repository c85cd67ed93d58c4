"""An OpenAI-compatible API for the Space's variants: `GET /v1/models`, `POST /v1/chat/completions`.

It answers through the chat page's engine: one model pool and its memory cap, and each model's saved conversation
states found by token prefix, so a request whose messages extend an earlier conversation re-reads only the new turn
(no conversation id: the API is stateless). A sampling setting a request leaves out is the variant's own, from the
manifest. Every text that enters a prompt has template markers neutralized, as on the chat page.

Requests: `model` (a variant id), `messages` (system/developer, user, assistant; text content), `temperature`,
`top_p`, `max_tokens` (or `max_completion_tokens`), `stop` (up to 4 texts), `seed`, `stream` and
`stream_options.include_usage`. A system message replaces the variant's own system prompt. Errors come in OpenAI's
shape, {"error": {"message", "type", "param", "code"}}: an unknown or unbuilt model 404, a bad request 400, a body
over IRIS_SPACE_MAX_REQUEST_KB 413, a wrong or missing API key 401, too many requests at once 429 and no model slot
free in time 503 (both with Retry-After). With an API key (IRIS_SPACE_API_KEY, or `api_key`), every /v1 request
must carry `Authorization: Bearer KEY`.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from . import settings
from .chat import Chat, Reply, Sampling
from .manifest import Busy, ModelError, UnknownVariant, UserError
from .prompt import build_messages

# Seconds a client is asked to wait before trying again after a 429 or 503.
RETRY_AFTER_S = 10
MAX_STOP = 4  # OpenAI's limit
MAX_STOP_CHARS = 200
SYSTEM_ROLES = ("system", "developer")
TURN_ROLES = ("user", "assistant")
# Fields of OpenAI's chat completion request, read here.
FIELDS = {"model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed"}
FIELDS |= {"stream", "stream_options"}
# Fields accepted at their default only (what this server does anyway); `user` is accepted and ignored.
NEUTRAL = {"n": 1, "presence_penalty": 0, "frequency_penalty": 0, "logprobs": False}
IGNORED = {"user"}
# Fields of OpenAI's API this server has no counterpart for.
UNSUPPORTED = {"tools", "tool_choice", "functions", "function_call", "parallel_tool_calls", "logit_bias"}
UNSUPPORTED |= {"top_logprobs", "response_format", "audio", "modalities", "prediction", "reasoning_effort"}


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else {}
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def from_user_error(exc: UserError, param: str | None = None) -> ApiError:
    """The engine's errors as the API answers them."""
    if isinstance(exc, UnknownVariant):
        return ApiError(404, str(exc), param="model", code="model_not_found")
    if isinstance(exc, Busy):
        return ApiError(503, str(exc), type="server_error", code="overloaded", retry_after=RETRY_AFTER_S)
    if isinstance(exc, ModelError):
        return ApiError(500, str(exc), type="server_error", code="model_unavailable")
    return ApiError(400, str(exc), param=exc.param or param)


def bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)


# -- the request ------------------------------------------------------------------------------------------------------
async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object, read no further than IRIS_SPACE_MAX_REQUEST_KB."""
    limit = settings.MAX_REQUEST_KB << 10
    too_large = ApiError(
        413,
        f"The request body exceeds {settings.MAX_REQUEST_KB:,} KB (IRIS_SPACE_MAX_REQUEST_KB). Send fewer or shorter "
        "messages.",
        code="request_too_large",
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise bad(f"We could not parse the JSON body of your request ({str(exc)[:200]}).") from None
    if not isinstance(data, dict):
        raise bad("The request body must be a JSON object.")
    return data


def _number(body: dict, key: str, integer: bool = False) -> float | int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise bad(f"{key} must be {'an integer' if integer else 'a number'}, not {json.dumps(value)[:80]}.", key)
    return value


def _check_fields(body: dict) -> None:
    for key, value in body.items():
        if key in FIELDS or key in IGNORED:
            continue
        if key in NEUTRAL:
            if value is not None and value != NEUTRAL[key]:
                raise bad(f"{key} is supported only as {json.dumps(NEUTRAL[key])} by this server.", key)
        elif key in UNSUPPORTED:
            if value is not None:
                raise bad(f"{key} is not supported by this server.", key)
        else:
            raise bad(f"Unrecognized request argument supplied: {key}", key)


def _text(content: Any, i: int) -> str:
    """A message's text: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise bad(
                    f"messages[{i}].content[{j}] must be a text part {{'type': 'text', 'text': str}}.", "messages"
                )
            parts.append(part["text"])
        return "\n".join(parts)
    raise bad(f"messages[{i}].content must be a string or a list of text parts.", "messages")


def split_messages(raw: Any) -> tuple[str | None, list[dict[str, str]], str, int]:
    """(system prompt or None, earlier turns, the new user message, index of the first turn) of `messages`."""
    if not isinstance(raw, list) or not raw:
        raise bad("messages must be a non-empty list of {'role', 'content'} objects.", "messages")
    if len(raw) > 2 * settings.MAX_TURNS + 2:
        raise bad(
            f"messages holds {len(raw):,} messages; this server takes at most {2 * settings.MAX_TURNS + 2:,} (a "
            f"system message, {settings.MAX_TURNS} turns and the new message). Send only the recent turns.",
            "messages",
        )
    system, turns = [], []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise bad(f"messages[{i}] must be an object with 'role' and 'content'.", "messages")
        extra = sorted(set(m) - {"role", "content", "name"})
        if extra:
            raise bad(f"messages[{i}].{extra[0]} is not supported by this server.", "messages")
        role = m.get("role")
        if role in SYSTEM_ROLES:
            if turns:
                raise bad(f"messages[{i}]: a {role} message must come before the conversation's turns.", "messages")
            system.append(_text(m.get("content"), i))
        elif role in TURN_ROLES:
            turns.append({"role": role, "content": _text(m.get("content"), i)})
        else:
            raise bad(
                f"messages[{i}].role must be one of {', '.join(SYSTEM_ROLES + TURN_ROLES)}, not "
                f"{json.dumps(role)[:40]}.",
                "messages",
            )
    if not turns or turns[-1]["role"] != "user":
        raise bad("The last message must be the user's: it is what the model answers.", "messages")
    return ("\n\n".join(system) if system else None), turns[:-1], turns[-1]["content"], len(system)


def _stop(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not (
        isinstance(stops, list)
        and len(stops) <= MAX_STOP
        and all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in stops)
    ):
        raise bad(
            f"stop must be a text or a list of up to {MAX_STOP} texts of 1 to {MAX_STOP_CHARS} characters.", "stop"
        )
    return tuple(stops)


def parse(body: dict[str, Any], chat: Chat) -> tuple[dict, list[dict], Sampling, bool, bool]:
    """(variant, prompt messages, sampling, stream, include_usage) of a chat completion request."""
    _check_fields(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model must be the id of a variant (GET /v1/models lists them).", "model")
    try:
        variant = chat.manifest.get(model)
    except UserError as exc:
        raise from_user_error(exc) from None
    if variant.get("status") == "not_built":
        raise ApiError(
            404,
            f"{model} is not built yet. Build it with: {variant.get('build_command') or 'iris-recipes run'}",
            param="model",
            code="model_not_found",
        )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad("stream must be true or false.", "stream")
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
        if not (isinstance(options, dict) and set(options) <= {"include_usage"}):
            raise bad("stream_options may hold only include_usage (true or false).", "stream_options")
    include_usage = (options or {}).get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        raise bad("stream_options.include_usage must be true or false.", "stream_options")
    max_tokens, max_completion = _number(body, "max_tokens", True), _number(body, "max_completion_tokens", True)
    if max_tokens is not None and max_completion is not None and max_tokens != max_completion:
        raise bad("max_tokens and max_completion_tokens differ; send one of them.", "max_tokens")
    system, history, message, offset = split_messages(body.get("messages"))
    try:
        messages = build_messages(variant, None, history, message, system=system, where="messages", offset=offset)
        sampling = Sampling.of(
            variant,
            _number(body, "temperature"),
            _number(body, "top_p"),
            max_tokens if max_tokens is not None else max_completion,
            _stop(body),
            _number(body, "seed", True),
            max_tokens_param="max_completion_tokens" if max_tokens is None else "max_tokens",
        )
    except UserError as exc:
        raise from_user_error(exc, "messages") from None
    return variant, messages, sampling, bool(stream), bool(include_usage)


# -- the answer -------------------------------------------------------------------------------------------------------
def usage(stats: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = stats["prompt_tokens"], stats["tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": stats["reused_tokens"]},  # read from a saved state, not again
    }


class Admission:
    """Requests in flight (answering or waiting for a model), at most CONCURRENCY + QUEUE_SIZE: the API's queue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def enter(self) -> None:
        limit = settings.CONCURRENCY + settings.QUEUE_SIZE
        with self._lock:
            if self.count >= limit:
                raise ApiError(
                    429,
                    f"This server is answering {limit} requests already (IRIS_SPACE_CONCURRENCY + "
                    "IRIS_SPACE_QUEUE_SIZE). Try again shortly.",
                    type="rate_limit_error",
                    code="rate_limit_exceeded",
                    retry_after=RETRY_AFTER_S,
                )
            self.count += 1

    def leave(self) -> None:
        with self._lock:
            self.count -= 1


def _once(*steps) -> Any:
    """A function that runs `steps` on its first call only."""
    lock, pending = threading.Lock(), list(steps)

    def run() -> None:
        with lock:
            todo = pending[:]
            pending.clear()
        for step in todo:
            step()

    return run


def _drain(replies: Iterator[Reply]) -> Reply:
    final = None
    for reply in replies:
        final = reply
    return final


def install(app: FastAPI, chat: Chat, api_key: str | None = None) -> None:
    """Add the /v1 routes to `app` (before anything mounted at "/", which would take their paths)."""
    api_key = api_key or settings.API_KEY
    admission = Admission()
    router = APIRouter(prefix="/v1")

    def authorize(request: Request) -> None:
        if not api_key:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                code="invalid_api_key",
            )
        if not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    def model_entry(vid: str) -> dict[str, Any]:
        try:
            created = int(chat.manifest.path.stat().st_mtime)
        except OSError:
            created = 0
        return {"id": vid, "object": "model", "created": created, "owned_by": "iris-recipes"}

    def servable() -> list[str]:
        return [vid for vid, v in chat.manifest.variants.items() if v.get("status") != "not_built"]

    @router.get("/models")
    async def list_models(request: Request):
        authorize(request)
        return {"object": "list", "data": [model_entry(vid) for vid in servable()]}

    @router.get("/models/{model:path}")
    async def get_model(model: str, request: Request):
        authorize(request)
        if model not in servable():
            raise ApiError(404, f"The model {model[:80]!r} does not exist.", param="model", code="model_not_found")
        return model_entry(model)

    @router.post("/chat/completions")
    async def chat_completions(request: Request):
        authorize(request)
        body = await read_json(request)
        variant, messages, sampling, stream, include_usage = parse(body, chat)
        admission.enter()
        replies, streaming = None, False
        try:
            replies = chat.reply(variant, messages, sampling)
            head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": variant["id"]}
            if not stream:
                final = await anyio.to_thread.run_sync(_drain, replies)
                return JSONResponse(
                    {
                        **head,
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": final.text},
                                "finish_reason": final.stats["finish_reason"],
                                "logprobs": None,
                            }
                        ],
                        "usage": usage(final.stats),
                    }
                )
            # The first update comes before the answer starts: a model that cannot be had is a status, not a broken
            # stream.
            first = await anyio.to_thread.run_sync(next, replies, None)
            streaming = True
            end = _once(replies.close, admission.leave)  # stop generating, free the model, leave the queue
            response = StreamingResponse(
                events(replies, first, head, include_usage, end),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
            weakref.finalize(response, end)  # a client gone before the stream started: its events never run
            return response
        except UserError as exc:
            raise from_user_error(exc) from None
        finally:
            if not streaming:  # else the stream closes the reply and leaves when it ends
                if replies is not None:
                    replies.close()
                admission.leave()

    @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown(path: str, request: Request):
        raise ApiError(404, f"Unknown endpoint {request.method} /v1/{path[:80]}.", code="unknown_url")

    async def handle(request: Request, exc: ApiError):
        return exc.response()

    app.include_router(router)
    app.add_exception_handler(ApiError, handle)


async def events(replies: Iterator[Reply], first: Reply | None, head: dict, include_usage: bool, done) -> Any:
    """The reply as server-sent events: OpenAI's chunks, then `[DONE]`."""

    def chunk(delta: dict | None = None, finish: str | None = None, **extra) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        data = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
        if include_usage and "usage" not in data:
            data["usage"] = None
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        reply, sent = first, 0
        while reply is not None:
            if len(reply.text) > sent:
                yield chunk({"content": reply.text[sent:]})
                sent = len(reply.text)
            if reply.done:
                break
            reply = await anyio.to_thread.run_sync(next, replies, None)  # a cancel waits for it: no overlap
        if reply is None or reply.stats is None:
            raise ModelError("The reply ended without its last update.")
        yield chunk({}, reply.stats["finish_reason"])
        if include_usage:
            yield chunk(None, usage=usage(reply.stats))
        yield "data: [DONE]\n\n"
    except UserError as exc:  # after the answer started: the error goes in the stream, as OpenAI sends it
        yield f"data: {json.dumps(from_user_error(exc).body())}\n\n"
    finally:
        done()
