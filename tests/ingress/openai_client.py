#!/usr/bin/env python3
"""Drives fleet-ingress with the official openai client (tests/ingress/ingress_test.cpp).

Usage: openai_client.py SPEC_JSON   (spec: base_url, api_key, model, prompt, max_tokens, messages, schema)
Prints one JSON object:
  completion:  {text, finish_reason, usage, id, object}        client.completions.create
  chat_stream: {text, finish_reason, usage, id, role, chunks}  client.chat.completions.create(stream=True,
                                                                stream_options={"include_usage": True})
  chat_logprobs: {text, logprobs: [[token, logprob, [[alt, logprob]...]]...]} non-streamed, with penalties
  json_schema, json_schema_stream: {text, finish_reason[, logprobs]}  response_format json_schema (spec's schema)
  bad_schema:  {status, param, message}                         a schema the server refuses
  n_choices:   {choices: [[index, text, finish_reason]...], completion_tokens}   n = 2, seed 11
  wrong_key:   {status, type}                                   the AuthenticationError the client raised
  bad_model:   {status, code}                                   the NotFoundError
"""
import json
import sys

import openai


def main() -> int:
    spec = json.loads(sys.argv[1])
    client = openai.OpenAI(base_url=spec["base_url"], api_key=spec["api_key"], max_retries=0, timeout=120)
    out = {}

    c = client.completions.create(model=spec["model"], prompt=spec["prompt"], max_tokens=spec["max_tokens"],
                                  temperature=0)
    out["completion"] = {"text": c.choices[0].text, "finish_reason": c.choices[0].finish_reason,
                         "usage": c.usage.model_dump(), "id": c.id, "object": c.object}

    stream = client.chat.completions.create(model=spec["model"], messages=spec["messages"],
                                            max_tokens=spec["max_tokens"], temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    text, role, finish, usage, chunks, cid = "", None, None, None, 0, None
    for chunk in stream:
        chunks += 1
        cid = chunk.id
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for ch in chunk.choices:
            if ch.delta.role:
                role = ch.delta.role
            if ch.delta.content:
                text += ch.delta.content
            if ch.finish_reason:
                finish = ch.finish_reason
    out["chat_stream"] = {"text": text, "finish_reason": finish, "usage": usage, "id": cid, "role": role,
                          "chunks": chunks}

    lp = client.chat.completions.create(model=spec["model"], messages=spec["messages"],
                                        max_tokens=spec["max_tokens"], temperature=0, logprobs=True,
                                        top_logprobs=3, frequency_penalty=0.7, presence_penalty=0.4)
    out["chat_logprobs"] = {
        "text": lp.choices[0].message.content,
        "logprobs": [[t.token, t.logprob, [[a.token, a.logprob] for a in t.top_logprobs]]
                     for t in lp.choices[0].logprobs.content]}

    # Structured output: a JSON schema, sampled (seeded), streamed and not; logprobs over the
    # masked distribution; a schema the server cannot enforce is a 400 naming response_format.
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": spec["schema"], "strict": True}}
    js = client.chat.completions.create(model=spec["model"], messages=spec["messages"], max_tokens=spec["max_tokens"],
                                        temperature=0.8, seed=3, response_format=fmt, logprobs=True, top_logprobs=2)
    out["json_schema"] = {"text": js.choices[0].message.content, "finish_reason": js.choices[0].finish_reason,
                          "logprobs": [[t.logprob, [a.logprob for a in t.top_logprobs]]
                                       for t in js.choices[0].logprobs.content]}
    text, finish = "", None
    for chunk in client.chat.completions.create(model=spec["model"], messages=spec["messages"],
                                                max_tokens=spec["max_tokens"], temperature=0.8, seed=3,
                                                response_format=fmt, stream=True):
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    out["json_schema_stream"] = {"text": text, "finish_reason": finish}
    try:
        client.chat.completions.create(model=spec["model"], messages=spec["messages"], max_tokens=4,
                                       response_format={"type": "json_schema", "json_schema": {
                                           "name": "x", "schema": {"type": "object", "minProperties": 1}}})
        out["bad_schema"] = {"status": 200}
    except openai.BadRequestError as e:
        out["bad_schema"] = {"status": e.status_code, "param": (e.body or {}).get("param"),
                             "message": (e.body or {}).get("message")}

    # n choices (seeds 11, 12): one response, choices by index.
    nc = client.chat.completions.create(model=spec["model"], messages=spec["messages"], max_tokens=spec["max_tokens"],
                                        temperature=0.9, seed=11, n=2)
    out["n_choices"] = {"choices": [[c.index, c.message.content, c.finish_reason] for c in nc.choices],
                        "completion_tokens": nc.usage.completion_tokens}

    bad = openai.OpenAI(base_url=spec["base_url"], api_key="wrong-key", max_retries=0)
    try:
        bad.models.list()
        out["wrong_key"] = {"status": 200}
    except openai.AuthenticationError as e:
        out["wrong_key"] = {"status": e.status_code, "type": (e.body or {}).get("type")}
    try:
        client.completions.create(model="no-such-model", prompt="x", max_tokens=1)
        out["bad_model"] = {"status": 200}
    except openai.NotFoundError as e:
        out["bad_model"] = {"status": e.status_code, "code": e.code}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
