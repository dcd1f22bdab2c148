#pragma once
// What shape a request's output must have (OpenAI's `response_format`), and the grammar that
// enforces it. The same JSON travels on the prompts topic, is stored with the request in Redis
// (fleet:req:<id> "params") and is compiled again by whichever last-stage worker samples the
// request, so a worker that takes a request over rebuilds the same constraint.
//   {"type": "text"}                                   no constraint (the same as absent)
//   {"type": "json_object"}                            any JSON object
//   {"type": "json_schema", "json_schema": {"name": "...", "schema": {...}, "strict": true}}
// Output is compact JSON (no blanks between tokens): the grammar leaves no room for them. An
// object's keys come out in the order of its schema's "required" array, then the optional ones
// by name (key order within a JSON object is not kept by every JSON library on the way here).
#include <string>

#include <nlohmann/json.hpp>

namespace fleet {

// Checks `response_format` and compiles it to a GBNF grammar (llama.cpp's syntax, root rule
// "root"); "" for {"type": "text"}. Throws std::invalid_argument with a message naming what is
// wrong (a malformed field, a schema the converter cannot express, e.g. an unsupported
// "format" or a "$ref" to nothing) — never crashes on any input.
std::string grammar_for_response_format(const nlohmann::json& response_format);

// One JSON Schema compiled the same way (the checks above, keys in output order); `what` names
// the field in error messages ("response_format", "tools[2].function.parameters").
std::string grammar_for_json_schema(const nlohmann::json& schema, const std::string& what);

// Whether `value` is valid under `schema` as the grammar enforces it: the value is written compact
// with each object's keys in the grammar's order (the schema's `required` first, then by name)
// and fed to the grammar compiled from the schema. For values written without the grammar (a
// tool call in an answer with tool_choice "auto"). Throws std::invalid_argument when the schema
// does not compile.
bool json_matches_schema(const nlohmann::json& schema, const nlohmann::ordered_json& value);

}  // namespace fleet
