"""Validates an OpenAPI document with openapi-spec-validator and prints every error, not only the
first (the CLI stops at one). Exit status 1 when there is any."""

import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator

with open(sys.argv[1], encoding="utf-8") as f:
    document = json.load(f)
errors = list(OpenAPIV31SpecValidator(document).iter_errors())
for error in errors:
    where = "/".join(str(p) for p in error.absolute_path)
    print(f"{where}: {error.message}")
print(f"openapi-spec-validator: {len(errors)} errors")
sys.exit(1 if errors else 0)
