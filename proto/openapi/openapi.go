// Package openapi holds the OpenAPI (Swagger 2.0) document of the REST API, generated
// from proto/netwatch by protoc-gen-openapiv2 (make generate), for servers to serve.
package openapi

import _ "embed"

// JSON is netwatch.swagger.json.
//
//go:embed netwatch.swagger.json
var JSON []byte
