// An error a request gets back, as the OpenAI API shapes it:
// {"error": {"message", "type", "param", "code"}} with an HTTP status.
#pragma once

#include <string>

#include "engram/error.h"

namespace engram::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string type, std::string message, std::string param = "",
           std::string code = "")
      : Error(message),
        status_(status),
        type_(std::move(type)),
        param_(std::move(param)),
        code_(std::move(code)) {}

  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }  // "" when no field is at fault
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string type_;
  std::string param_;
  std::string code_;
};

// 400 invalid_request_error naming the field.
inline ApiError bad_field(const std::string& param, const std::string& message) {
  return ApiError(400, "invalid_request_error", message, param);
}

// The JSON body of an error response.
std::string error_body(const std::string& message, const std::string& type,
                       const std::string& param = "", const std::string& code = "");
inline std::string error_body(const ApiError& e) {
  return error_body(e.what(), e.type(), e.param(), e.code());
}

}  // namespace engram::server
