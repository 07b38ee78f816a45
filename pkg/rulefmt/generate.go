package rulefmt

// The JSON Schema editors use for pipeline files is generated from the types
// in this package and their doc comments; TestSchemaUpToDate in
// internal/cmd/genschema fails when it is stale.
//go:generate go run ../../internal/cmd/genschema -o ../../schema/pipelines.schema.json
