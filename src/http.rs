//! The one small HTTP server of the product: GET-only routes answered with a whole body or a stream (for
//! Server-Sent Events), shared by `microlambda dashboard` and the `/metrics` endpoints of nodes and placement.
//! HTTP/1.1 on hyper over the process's tokio runtime; routing is the caller's function of the path.
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{what} {addr:?} is not HOST:PORT with a numeric host (e.g. 127.0.0.1:8090)")]
    BadAddress { what: &'static str, addr: String },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind { what: &'static str, addr: String, source: std::io::Error },
}

/// What a route answers.
pub enum Reply {
    /// A whole body.
    Body { status: u16, content_type: &'static str, body: Bytes },
    /// A body written as the stream yields it, never cached (Server-Sent Events).
    Stream { content_type: &'static str, chunks: BoxStream<'static, Bytes> },
}

impl Reply {
    pub fn ok(content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Reply::Body { status: 200, content_type, body: body.into() }
    }
    pub fn not_found(path: &str) -> Self {
        Reply::Body {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: format!("no page at {path}\n").into(),
        }
    }
}

/// The routes of one server: the reply for a path (without its query string).
pub type Routes = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// Bind `addr` (`what` names the setting in errors, e.g. `--listen`), with errors that say which and why.
pub async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, HttpError> {
    let parsed: SocketAddr = addr.parse().map_err(|_| HttpError::BadAddress { what, addr: addr.to_string() })?;
    TcpListener::bind(parsed).await.map_err(|source| HttpError::Bind { what, addr: addr.to_string(), source })
}

/// Serve `routes` on `listener` until the process ends (each connection on its own task).
pub async fn serve(listener: TcpListener, routes: Routes) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!("http: cannot accept a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let routes = routes.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let reply = answer(&routes, &req);
                async move { Ok::<_, Infallible>(reply) }
            });
            // A client that goes away mid-stream ends its connection only.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn answer<B>(routes: &Routes, req: &Request<B>) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header("allow", "GET, HEAD")
            .body(full(Bytes::from_static(b"only GET and HEAD\n")))
            .expect("a valid response");
    }
    match routes(req.uri().path()) {
        Reply::Body { status, content_type, body } => Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("cache-control", "no-store")
            .body(full(if head { Bytes::new() } else { body }))
            .expect("a valid response"),
        Reply::Stream { content_type, chunks } => {
            let body = if head {
                full(Bytes::new())
            } else {
                UnsyncBoxBody::new(StreamBody::new(chunks.map(|c| Ok::<_, Infallible>(Frame::data(c)))))
            };
            Response::builder()
                .header("content-type", content_type)
                .header("cache-control", "no-store")
                .body(body)
                .expect("a valid response")
        }
    }
}

fn full(b: Bytes) -> UnsyncBoxBody<Bytes, Infallible> {
    Full::new(b).boxed_unsync()
}
