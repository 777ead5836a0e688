"""drf-spectacular documents each operation's success; this hook adds the errors every operation can answer
with, so that a client (and schemathesis) finds each status it may get in the schema."""

ERROR = {"$ref": "#/components/schemas/Error"}
FIELD_ERRORS = {"$ref": "#/components/schemas/FieldErrors"}
COMPONENTS = {
    "Error": {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
        "description": "What went wrong, in `detail`.",
    },
    "FieldErrors": {
        "type": "object",
        "additionalProperties": True,
        "description": "Each field in error with its reasons (`non_field_errors` for the whole input); "
        "`detail` when the body could not be read at all.",
    },
}


def _response(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document_errors(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            takes_input = "requestBody" in operation or any(
                parameter.get("in") == "query" for parameter in operation.get("parameters", [])
            )
            if takes_input:
                responses.setdefault(
                    "400", _response("Invalid input: each field and its reason.", FIELD_ERRORS)
                )
            if any(operation.get("security", [])):  # the token endpoint, open to all, has none
                responses.setdefault("401", _response("No credentials, or a wrong or revoked token.", ERROR))
                responses.setdefault("403", _response("A session request without its CSRF token.", ERROR))
            if "{id}" in path:
                responses.setdefault("404", _response("Not one of yours.", ERROR))
            if "requestBody" in operation:
                responses.setdefault("415", _response("The body is not JSON.", ERROR))
            responses.setdefault("429", _response("Too many requests: wait and try again.", ERROR))
    return result
