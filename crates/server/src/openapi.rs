//! The OpenAPI 3 document of the API, hand-written (`openapi.json`); a test
//! checks that it lists exactly the routes the router serves.

/// The document, served at `/openapi.json`.
pub const DOC: &str = include_str!("openapi.json");
