#pragma once
// OpenAI's error body, {"error": {"message", "type", "param", "code"}}, with its HTTP status.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "contracts/prompt_request.h"

namespace fleet::ingress {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";  // OpenAI's types: invalid_request_error, authentication_error, ...
  std::optional<std::string> param;            // the request field at fault; null when none
  std::optional<std::string> code;             // e.g. model_not_found, invalid_api_key; null when none

  nlohmann::json to_json() const;
  std::string body() const;  // to_json().dump()
};

// Constructors for the cases the ingress answers.
ApiError bad_request(std::string message, std::optional<std::string> param = std::nullopt,
                     std::optional<std::string> code = std::nullopt);
ApiError unsupported_parameter(const std::string& param, const std::string& why);
ApiError invalid_api_key();
ApiError model_not_found(const std::string& model);
ApiError too_many_requests(int limit);
ApiError no_live_worker(const std::string& why);
ApiError internal_error(std::string message);
ApiError gateway_timeout(std::string message);
// An error body for a status httplib answered on its own (413 payload too large, 404 path, ...).
ApiError for_status(int status);
// A pipeline error event (contracts' error codes) as the HTTP error the client gets.
ApiError from_pipeline_error(const ContractError& e);

}  // namespace fleet::ingress
