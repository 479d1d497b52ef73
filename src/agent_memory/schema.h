// The memory store's schema, one list of migrations per SQL dialect. Version N of the schema is
// what the first N migrations make; the schema_version table holds N. open_memory_store() runs
// the missing steps in one transaction and refuses a store newer than this build.
#pragma once

#include "agent_memory/sql_connection.h"

namespace engram::agent_memory {

// Brings the store to schema_version(), or throws engram::Error (a newer store, a failed step).
void migrate_schema(SqlConnection& c, const std::string& where);

// The version recorded in the store (0 for an empty database).
int stored_schema_version(SqlConnection& c);

}  // namespace engram::agent_memory
