//! The `microsoft/swupdate:2` component. The handler is
//! [`handrail_swupdate_handler::SwupdateHandler`]; one component exports one handler,
//! so each id the library implements has a crate of its own that exports it.

handrail_sdk::export!(handrail_swupdate_handler::SwupdateHandler);
