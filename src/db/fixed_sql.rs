//! Statements written as SQL text — what diesel's builder cannot say, such as
//! data-modifying CTEs — that PostgreSQL still prepares once per connection. diesel keeps
//! a prepared statement per statement *type* when the type declares its text fixed
//! (`sql_query` cannot: it is parsed and planned on every call), so each such statement
//! is a type of its own: it writes its text and binds in `QueryFragment::walk_ast`, and
//! [`fixed_pg_statement!`] declares it fixed.
//!
//! The promise that makes this correct: a statement type writes the same text every time
//! (its binds differ, never its words).

/// Declares `$statement<'_>` (a type with one lifetime that implements
/// `QueryFragment<Pg>`) a PostgreSQL query of fixed text whose rows are `$sql_type`.
macro_rules! fixed_pg_statement {
    ($statement:ident, $sql_type:ty) => {
        impl diesel::query_builder::QueryId for $statement<'_> {
            type QueryId = $statement<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
        impl diesel::query_builder::Query for $statement<'_> {
            type SqlType = $sql_type;
        }
        impl diesel::RunQueryDsl<diesel::PgConnection> for $statement<'_> {}
    };
}
pub(crate) use fixed_pg_statement;
