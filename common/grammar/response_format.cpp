#include "grammar/response_format.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <memory>
#include <set>
#include <stdexcept>

#include "json-schema-to-grammar.h"
#include "util/json_depth.h"
#include "llama-grammar.h"

namespace fleet {
namespace {

// JSON Schema keywords the grammar enforces (llama.cpp's converter), and the ones that only
// annotate. Anything else would be silently dropped by the converter, so an output could break
// the schema: refused instead, naming the keyword and where it is (as OpenAI's strict mode
// refuses what it does not support).
bool enforced_keyword(const std::string& k) {
  static const std::set<std::string> kw = {
      "type",     "properties", "required", "additionalProperties", "items",     "prefixItems", "minItems",
      "maxItems", "enum",       "const",    "anyOf",                "allOf",     "$ref",        "pattern",
      "minLength", "maxLength", "format",   "minimum",              "maximum",   "exclusiveMinimum", "exclusiveMaximum"};
  return kw.count(k) > 0;
}
bool annotation_keyword(const std::string& k) {
  static const std::set<std::string> kw = {"title",     "description", "default",  "examples", "$schema", "$id",
                                           "$comment",  "deprecated",  "readOnly", "writeOnly", "$defs",  "definitions"};
  return kw.count(k) > 0;
}

bool only_integer(const nlohmann::json& type) {
  if (type.is_string()) return type == "integer";
  if (!type.is_array() || type.empty()) return false;
  for (const auto& t : type)
    if (t != "integer" && t != "null") return false;
  return true;
}

// The grammar engine unrolls repetitions ({m,n}) and gives up above 2000: a longer bound would be
// dropped (the output could break the schema) or refused late, and min > max never ends.
constexpr int64_t kMaxRepetition = 2000;

void check_bounds(const nlohmann::json& schema, const char* lo, const char* hi, const std::string& path,
                  const std::function<void(const std::string&)>& refuse) {
  int64_t low = 0, high = kMaxRepetition;
  for (const char* k : {lo, hi}) {
    auto it = schema.find(k);
    if (it == schema.end()) continue;
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > kMaxRepetition)
      refuse(std::string("'") + k + "' at " + path + " must be an integer in [0, " + std::to_string(kMaxRepetition) + "]");
    (k == lo ? low : high) = it->get<int64_t>();
  }
  if (low > high) refuse(std::string("'") + lo + "' at " + path + " is above '" + hi + "'");
}

// Repetition bounds inside a regex pattern ({n}, {m,}, {m,n}; read as the converter reads them:
// split at the comma, blanks and a '+' allowed) obey the same limits; and the converter recurses
// per group, so patterns are short and shallow.
constexpr size_t kMaxPatternLength = 1000;
constexpr int kMaxPatternGroupDepth = 16;

void check_pattern(const std::string& pattern, const std::string& path, const std::function<void(const std::string&)>& refuse) {
  if (pattern.size() > kMaxPatternLength)
    refuse("'pattern' at " + path + " is longer than " + std::to_string(kMaxPatternLength) + " characters");
  int depth = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char ch = pattern[i];
    if (ch == '\\') {
      ++i;
      continue;
    }
    if (ch == '(' && ++depth > kMaxPatternGroupDepth)
      refuse("'pattern' at " + path + " nests groups deeper than " + std::to_string(kMaxPatternGroupDepth));
    if (ch == ')') --depth;
    if (ch != '{') continue;
    const size_t close = pattern.find('}', i);
    if (close == std::string::npos) continue;
    const std::string inner = pattern.substr(i + 1, close - i - 1);
    if (inner.empty() || inner.find_first_not_of("0123456789,+ ") != std::string::npos) continue;  // not a repetition
    int64_t bound[2] = {-1, -1};
    size_t part = 0;
    for (char c : inner) {
      if (c == ',') {
        if (++part > 1) refuse("a repetition in 'pattern' at " + path + " has more than two bounds");
      } else if (c >= '0' && c <= '9') {
        bound[part] = std::min<int64_t>((bound[part] < 0 ? 0 : bound[part]) * 10 + (c - '0'), kMaxRepetition + 1);
      }
    }
    if (part == 0) bound[1] = bound[0];  // {n}
    if (bound[0] > kMaxRepetition || bound[1] > kMaxRepetition)
      refuse("a repetition in 'pattern' at " + path + " is above " + std::to_string(kMaxRepetition));
    if (bound[0] >= 0 && bound[1] >= 0 && bound[0] > bound[1])
      refuse("a repetition {m,n} in 'pattern' at " + path + " has m > n");
    i = close;
  }
}

// Before anything walks the schema recursively (copies, dump(), the checks, the converter): its
// nesting and size are bounded, counted without recursion, so a deeply nested body is a clear
// error instead of a stack overflow.
constexpr size_t kMaxDepth = 32, kMaxValues = 20000;

void check_shape(const nlohmann::json& root, const std::string& what) {
  std::vector<std::pair<const nlohmann::json*, size_t>> todo = {{&root, 1}};
  size_t values = 0;
  while (!todo.empty()) {
    const auto [v, depth] = todo.back();
    todo.pop_back();
    if (++values > kMaxValues)
      throw std::invalid_argument(what + " is too large (more than " + std::to_string(kMaxValues) + " JSON values)");
    if (!v->is_structured()) continue;
    if (depth >= kMaxDepth)
      throw std::invalid_argument(what + " nests deeper than " + std::to_string(kMaxDepth) + " levels");
    for (const auto& child : *v) todo.push_back({&child, depth + 1});
  }
}

void check_keywords(const nlohmann::json& schema, const std::string& path, const std::string& what) {
  if (schema.is_boolean()) return;
  if (!schema.is_object()) throw std::invalid_argument(what + ": the JSON schema at " + path + " is not an object");
  const std::function<void(const std::string&)> refuse = [&what](const std::string& why) {
    throw std::invalid_argument(what + ": the JSON schema cannot be used: " + why);
  };
  constexpr size_t kMaxProperties = 128;  // the converter's rules for optional ones grow with the square
  if (auto props = schema.find("properties"); props != schema.end() && props->is_object() && props->size() > kMaxProperties)
    refuse("'properties' at " + path + " has more than " + std::to_string(kMaxProperties) + " entries");
  check_bounds(schema, "minLength", "maxLength", path, refuse);
  check_bounds(schema, "minItems", "maxItems", path, refuse);
  if (auto p = schema.find("pattern"); p != schema.end() && p->is_string()) check_pattern(p->get<std::string>(), path, refuse);
  for (const auto& [k, v] : schema.items()) {
    if (!enforced_keyword(k) && !annotation_keyword(k))
      refuse("'" + k + "' at " + path + " is not supported (the grammar cannot enforce it)");
    if ((k == "minimum" || k == "maximum" || k == "exclusiveMinimum" || k == "exclusiveMaximum") &&
        !only_integer(schema.value("type", nlohmann::json())))
      refuse("'" + k + "' at " + path + " is only supported with \"type\": \"integer\"");
    if (k == "format") {
      static const std::set<std::string> formats = {"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"};
      if (!v.is_string() || !formats.count(v.get<std::string>()))
        refuse("'format' at " + path + " must be one of date, time, date-time, uuid (got " + v.dump() + ")");
    }
  }
  auto each_schema_in = [&](const char* key, bool by_name) {
    auto it = schema.find(key);
    if (it == schema.end()) return;
    if (by_name && it->is_object()) {
      for (const auto& [name, sub] : it->items()) check_keywords(sub, path + "/" + key + "/" + name, what);
    } else if (!by_name && it->is_array()) {
      for (size_t i = 0; i < it->size(); ++i) check_keywords((*it)[i], path + "/" + key + "/" + std::to_string(i), what);
    } else if (!by_name && (it->is_object() || it->is_boolean())) {
      check_keywords(*it, path + "/" + key, what);
    }
  };
  each_schema_in("properties", true);
  each_schema_in("$defs", true);
  each_schema_in("definitions", true);
  each_schema_in("items", false);
  each_schema_in("prefixItems", false);
  each_schema_in("anyOf", false);
  each_schema_in("allOf", false);
  each_schema_in("additionalProperties", false);
}

// The schema with each "properties" object in output order: the names listed in "required"
// first, in that array's order, then the others by name. The order of an object's keys does not
// survive every JSON library between a client and the worker (nlohmann::json, Go maps sort or
// shuffle them); an array's order does, so every worker derives the same grammar.
nlohmann::ordered_json in_output_order(const nlohmann::json& s) {
  if (s.is_array()) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& e : s) out.push_back(in_output_order(e));
    return out;
  }
  if (!s.is_object()) return nlohmann::ordered_json::parse(s.dump());
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [k, v] : s.items()) {
    if (k == "properties" && v.is_object()) {
      nlohmann::ordered_json props = nlohmann::ordered_json::object();
      if (auto req = s.find("required"); req != s.end() && req->is_array())
        for (const auto& name : *req)
          if (name.is_string() && v.contains(name.get<std::string>()) && !props.contains(name.get<std::string>()))
            props[name.get<std::string>()] = in_output_order(v.at(name.get<std::string>()));
      for (const auto& [name, sub] : v.items())
        if (!props.contains(name)) props[name] = in_output_order(sub);
      out[k] = std::move(props);
    } else if (k == "enum" || k == "const" || k == "default" || k == "examples") {
      out[k] = nlohmann::ordered_json::parse(v.dump());  // values, not schemas
    } else {
      out[k] = in_output_order(v);
    }
  }
  return out;
}


}  // namespace

std::string grammar_for_json_schema(const nlohmann::json& schema, const std::string& what) {
  check_shape(schema, what);
  check_keywords(schema, "#", what);
  std::string gbnf;
  try {
    gbnf = json_schema_to_grammar(common_json::parse(in_output_order(schema).dump()), /*force_gbnf=*/true);
  } catch (const std::exception& e) {
    std::string why = e.what();
    const std::string prefix = "JSON schema conversion failed:\n";
    while (why.rfind(prefix, 0) == 0) why = why.substr(prefix.size());
    throw std::invalid_argument(what + ": the JSON schema cannot be used: " + why);
  }
  // The converter's output must parse as a grammar; if it does not, say so instead of failing later.
  std::unique_ptr<llama_grammar, void (*)(llama_grammar*)> g(
      llama_grammar_init_impl(nullptr, gbnf.c_str(), "root", false, nullptr, 0, nullptr, 0), llama_grammar_free_impl);
  if (!g) throw std::invalid_argument(what + ": the JSON schema gives a grammar the engine cannot use");
  return gbnf;
}

namespace {

using ojson = nlohmann::ordered_json;

bool has_type(const ojson& schema, const ojson& value) {
  const auto t = schema.find("type");
  auto one = [&](const ojson& name) {
    if (name == "object") return value.is_object();
    if (name == "array") return value.is_array();
    if (name == "string") return value.is_string();
    if (name == "integer") return value.is_number_integer();
    if (name == "number") return value.is_number();
    if (name == "boolean") return value.is_boolean();
    if (name == "null") return value.is_null();
    return false;
  };
  if (t == schema.end()) return !value.is_object() || schema.contains("properties") || !schema.contains("items");
  if (t->is_array()) return std::any_of(t->begin(), t->end(), one);
  return one(*t);
}

// The alternative of an "anyOf" a value was written under: the first whose type fits and, for an
// object, that lists all its keys; else the first whose type fits (json_matches_schema checks the
// result, so a wrong pick can only refuse a value, never admit one).
const ojson& alternative_for(const ojson& schema, const ojson& value) {
  const auto any = schema.is_object() ? schema.find("anyOf") : schema.end();
  if (any == schema.end() || !any->is_array()) return schema;
  for (int pass = 0; pass < 2; ++pass)
    for (const ojson& alt : *any) {
      if (!alt.is_object() || !has_type(alt, value)) continue;
      if (pass == 0 && value.is_object()) {
        const auto props = alt.find("properties");
        if (props == alt.end() || !std::all_of(value.items().begin(), value.items().end(),
                                               [&](const auto& kv) { return props->contains(kv.key()); }))
          continue;
      }
      return alt;
    }
  return schema;
}

// An object schema's properties as the converter lays them out: required ones first, each group
// in the order listed; "allOf" merges its parts (an object part's properties all required, an
// "anyOf" part's optional), as the converter does.
std::vector<std::pair<std::string, const ojson*>> object_layout(const ojson& schema) {
  std::vector<std::pair<std::string, const ojson*>> props;
  std::set<std::string> required;
  auto add = [&](const ojson& part, bool all_required) {
    const auto p = part.is_object() ? part.find("properties") : part.end();
    if (p == part.end() || !p->is_object()) return;
    std::set<std::string> req;
    if (auto r = part.find("required"); r != part.end() && r->is_array())
      for (const ojson& n : *r)
        if (n.is_string()) req.insert(n.get<std::string>());
    for (auto it = p->begin(); it != p->end(); ++it) {
      const std::string& name = it.key();  // not a structured binding: clang 14 cannot capture one
      if (std::any_of(props.begin(), props.end(), [&](const auto& e) { return e.first == name; })) continue;
      props.emplace_back(name, &it.value());
      if (all_required || req.count(name)) required.insert(name);
    }
  };
  if (auto all = schema.is_object() ? schema.find("allOf") : schema.end(); all != schema.end() && all->is_array()) {
    for (const ojson& part : *all) {
      if (auto any = part.is_object() ? part.find("anyOf") : part.end(); any != part.end() && any->is_array())
        for (const ojson& alt : *any) add(alt, false);
      else
        add(part, true);
    }
  } else {
    add(schema, false);
  }
  std::stable_partition(props.begin(), props.end(), [&](const auto& e) { return required.count(e.first) > 0; });
  return props;
}

// `value` with each object's keys in the order the grammar of `schema` (after in_output_order)
// writes them, following "properties", "allOf", "anyOf", "items" and "prefixItems"; keys the
// schema does not list come after, by name.
ojson in_schema_order(const ojson& schema_in, const ojson& value) {
  const ojson& schema = alternative_for(schema_in, value);
  if (value.is_array()) {
    ojson out = ojson::array();
    const auto items = schema.is_object() ? schema.find("items") : schema.end();
    const auto prefix = schema.is_object() ? schema.find("prefixItems") : schema.end();
    for (size_t i = 0; i < value.size(); ++i) {
      if (prefix != schema.end() && prefix->is_array() && i < prefix->size()) out.push_back(in_schema_order((*prefix)[i], value[i]));
      else if (items != schema.end()) out.push_back(in_schema_order(*items, value[i]));
      else out.push_back(value[i]);
    }
    return out;
  }
  if (!value.is_object()) return value;
  ojson out = ojson::object();
  for (const auto& [name, sub] : object_layout(schema))
    if (value.contains(name)) out[name] = in_schema_order(*sub, value.at(name));
  std::vector<std::string> rest;
  for (const auto& [name, v] : value.items())
    if (!out.contains(name)) rest.push_back(name);
  std::sort(rest.begin(), rest.end());
  const auto extra = schema.is_object() ? schema.find("additionalProperties") : schema.end();
  for (const std::string& name : rest)
    out[name] = extra != schema.end() && extra->is_object() ? in_schema_order(*extra, value.at(name)) : value.at(name);
  return out;
}

}  // namespace

bool json_matches_schema(const nlohmann::json& schema, const nlohmann::ordered_json& value) {
  if (json_deeper_than(value, 64)) return false;  // in_schema_order and dump() recurse
  const std::string gbnf = grammar_for_json_schema(schema, "schema");
  const std::string text = in_schema_order(in_output_order(schema), value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::unique_ptr<llama_grammar, void (*)(llama_grammar*)> g(
      llama_grammar_init_impl(nullptr, gbnf.c_str(), "root", false, nullptr, 0, nullptr, 0), llama_grammar_free_impl);
  if (!g) return false;
  try {
    llama_grammar_accept_str(*g, text);
  } catch (const std::exception&) {
    return false;  // a character the grammar does not allow
  }
  return std::any_of(g->stacks.begin(), g->stacks.end(), [](const auto& s) { return s.empty(); });
}

std::string grammar_for_response_format(const nlohmann::json& rf) {
  if (!rf.is_object()) throw std::invalid_argument("response_format must be an object");
  check_shape(rf, "response_format");
  const auto type = rf.find("type");
  if (type == rf.end() || !type->is_string())
    throw std::invalid_argument("response_format.type must be one of \"text\", \"json_object\", \"json_schema\"");
  for (const auto& [key, value] : rf.items())
    if (key != "type" && key != "json_schema")
      throw std::invalid_argument("response_format: unknown field '" + key + "'");
  const std::string t = type->get<std::string>();
  if (t == "text" || t == "json_object") {
    if (rf.contains("json_schema")) throw std::invalid_argument("response_format.json_schema is only for type \"json_schema\"");
    return t == "text" ? "" : grammar_for_json_schema({{"type", "object"}}, "response_format");
  }
  if (t != "json_schema")
    throw std::invalid_argument("response_format.type must be one of \"text\", \"json_object\", \"json_schema\" (got \"" + t + "\")");
  const auto js = rf.find("json_schema");
  if (js == rf.end() || !js->is_object()) throw std::invalid_argument("response_format.json_schema must be an object");
  for (const auto& [key, value] : js->items()) {
    if (key == "name") {
      if (!value.is_string()) throw std::invalid_argument("response_format.json_schema.name must be a string");
    } else if (key == "strict") {
      if (!value.is_boolean() && !value.is_null()) throw std::invalid_argument("response_format.json_schema.strict must be a boolean");
    } else if (key == "description") {
      if (!value.is_string()) throw std::invalid_argument("response_format.json_schema.description must be a string");
    } else if (key != "schema") {
      throw std::invalid_argument("response_format.json_schema: unknown field '" + key + "'");
    }
  }
  const auto schema = js->find("schema");
  if (schema == js->end()) return grammar_for_json_schema({{"type", "object"}}, "response_format");  // OpenAI: no schema, any object
  if (!schema->is_object() && !schema->is_boolean())
    throw std::invalid_argument("response_format.json_schema.schema must be a JSON Schema (an object)");
  return grammar_for_json_schema(*schema, "response_format");
}

}  // namespace fleet
