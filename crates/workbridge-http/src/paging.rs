//! Turning "fetch page N" into a stream of items.

use std::future::Future;

use futures::stream::{self, Stream, TryStreamExt};
use workbridge_core::Result;

/// One page and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, S> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The state to fetch the next page with; `None` after the last page.
    pub next: Option<S>,
}

/// A stream of every item of every page: `fetch(state)` is called with `first`, then with each
/// page's `next`, until a page has none. Pages are fetched lazily, one at a time; the first
/// error ends the stream.
///
/// ```
/// use futures::TryStreamExt;
/// use workbridge_http::{Page, paginate};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), workbridge_core::Error> {
/// // Offsets 0, 2, 4 of five records: like `sysparm_offset` / `start-index` paging.
/// let records = ["a", "b", "c", "d", "e"];
/// let all: Vec<&str> = paginate(0usize, |offset| async move {
///     let items = records.iter().skip(offset).take(2).copied().collect::<Vec<_>>();
///     let next = (offset + 2 < records.len()).then_some(offset + 2);
///     Ok(Page { items, next })
/// })
/// .try_collect()
/// .await?;
/// assert_eq!(all, records);
/// # Ok(())
/// # }
/// ```
pub fn paginate<T, S, F, Fut>(first: S, mut fetch: F) -> impl Stream<Item = Result<T>>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Result<Page<T, S>>>,
{
    stream::try_unfold(Some(first), move |state| {
        let fut = state.map(&mut fetch);
        async move {
            match fut {
                None => Ok(None),
                Some(fut) => {
                    let page = fut.await?;
                    Ok(Some((
                        stream::iter(page.items.into_iter().map(Ok)),
                        page.next,
                    )))
                }
            }
        }
    })
    .try_flatten()
}
