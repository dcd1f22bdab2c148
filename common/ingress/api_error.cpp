#include "ingress/api_error.h"

namespace fleet::ingress {

nlohmann::json ApiError::to_json() const {
  nlohmann::json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (param) e["param"] = *param;
  if (code) e["code"] = *code;
  return {{"error", e}};
}

std::string ApiError::body() const { return to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

ApiError bad_request(std::string message, std::optional<std::string> param, std::optional<std::string> code) {
  return {400, std::move(message), "invalid_request_error", std::move(param), std::move(code)};
}

ApiError unsupported_parameter(const std::string& param, const std::string& why) {
  return {400, "Unsupported parameter: '" + param + "': " + why, "invalid_request_error", param,
          "unsupported_parameter"};
}

ApiError invalid_api_key() {
  return {401, "Incorrect API key provided (send it as 'Authorization: Bearer <key>').", "invalid_request_error",
          std::nullopt, "invalid_api_key"};
}

ApiError model_not_found(const std::string& model) {
  return {404, "The model '" + model + "' does not exist or you do not have access to it.", "invalid_request_error",
          "model", "model_not_found"};
}

ApiError too_many_requests(int limit) {
  return {429, "This ingress already serves its limit of " + std::to_string(limit) +
                   " requests in flight (ingress.max_in_flight); retry later.",
          "requests", std::nullopt, "rate_limit_exceeded"};
}

ApiError no_live_worker(const std::string& why) { return {503, why, "server_error", std::nullopt, "unavailable"}; }

ApiError internal_error(std::string message) { return {500, std::move(message), "server_error", std::nullopt, std::nullopt}; }

ApiError gateway_timeout(std::string message) {
  return {504, std::move(message), "server_error", std::nullopt, "timeout"};
}

ApiError for_status(int status) {
  switch (status) {
    case 404: return {404, "Unknown path: see GET /v1/models, POST /v1/completions, POST /v1/chat/completions.",
                      "invalid_request_error", std::nullopt, "not_found"};
    case 405: return {405, "Method not allowed for this path.", "invalid_request_error", std::nullopt, std::nullopt};
    case 413: return {413, "The request body is larger than this ingress accepts (ingress.max_body_bytes).",
                      "invalid_request_error", std::nullopt, "request_too_large"};
    case 400: return bad_request("Malformed HTTP request.");
    default: break;
  }
  return {status, "HTTP status " + std::to_string(status), status >= 500 ? "server_error" : "invalid_request_error",
          std::nullopt, std::nullopt};
}

ApiError from_pipeline_error(const ContractError& e) {
  if (e.code == error_code::kPromptTooLong)
    return bad_request(e.message, std::nullopt, "context_length_exceeded");
  if (e.code == error_code::kInvalidRequest || e.code == error_code::kInvalidJson) return bad_request(e.message);
  if (e.code == error_code::kTimeout) return gateway_timeout(e.message);
  return internal_error(e.code + ": " + e.message);
}

}  // namespace fleet::ingress
