"""Developer tools: code generation, OpenAPI generation, breaking-change check."""
