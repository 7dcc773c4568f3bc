//! One `Repository` method of a backend as the outside sees it: a span around its requests,
//! and an error that names it.

use std::fmt;
use std::future::Future;

use tracing::Instrument as _;

use crate::error::Result;
use crate::model::{ItemId, ItemType};
use crate::repository::Operation;

/// Runs `call`, the body of one [`Repository`](crate::Repository) method of `system`, the way
/// every adapter's trait impl does:
///
/// - inside a DEBUG span `repository` with the fields `system`, `operation` and, where the
///   method has them, `item_type` and `item_id` — so each HTTP event below it can be tied to
///   the method and the item it served;
/// - its error, if any, names the operation (replacing one an inner call set: a method built
///   from others, comments read through a `get`, names itself), and the system, item type and
///   id unless an inner call set them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use workbridge_core::{Error, ErrorKind, ItemId, ItemType, Operation, traced};
/// let t = ItemType::from("Bug");
/// let id = ItemId::from("7");
/// let r: workbridge_core::Result<()> = traced(Operation::Comments, &"Azure DevOps fabrikam", Some(&t), Some(&id), async {
///     Err(Error::new(ErrorKind::Unavailable, "down").with_operation("get_many"))
/// })
/// .await;
/// let e = r.unwrap_err();
/// assert_eq!(e.operation(), Some("comments"));
/// assert_eq!(e.context().system.as_deref(), Some("Azure DevOps fabrikam"));
/// assert_eq!(e.context().item_id.as_ref(), Some(&id));
/// # }
/// ```
///
/// # Errors
/// The error of `call`, with its context completed.
pub async fn traced<T>(
    operation: Operation,
    system: &(dyn fmt::Display + Sync),
    item_type: Option<&ItemType>,
    item_id: Option<&ItemId>,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    let span = tracing::debug_span!(
        "repository",
        system = %system,
        operation = operation.as_str(),
        item_type = item_type.map(ItemType::as_str),
        item_id = item_id.map(ItemId::as_str),
    );
    call.instrument(span).await.map_err(|e| {
        e.in_operation(operation.as_str())
            .or_item(item_type, item_id)
            .with_system(system)
    })
}
