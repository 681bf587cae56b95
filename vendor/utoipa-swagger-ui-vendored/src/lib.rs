//! Swagger UI 5.17.14 as a zip archive, for `utoipa-swagger-ui`'s `vendored` feature: the files
//! the `/docs` page loads and nothing else (see README.md).

/// The zip archive's bytes (`swagger-ui-5.17.14/dist/...`).
#[doc(hidden)]
pub const SWAGGER_UI_VENDORED: &[u8] = include_bytes!("../res/v5.17.14.zip");
