package demo

import _ "embed"

//go:generate sh gen_schema.sh

// schemaSQL is what Django's migrations of the fixture project
// (tests/django) make on SQLite, dumped by gen_schema.sh. TestSchemaIsCurrent
// fails when the migrations have moved on; run `go generate ./demo`.
//
//go:embed schema.sql
var schemaSQL string
