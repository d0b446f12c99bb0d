//! The HTTP listeners beside the client port (the Prometheus endpoint and the
//! AdminServer): each is one thread of its own running a single-threaded tokio
//! runtime and hyper's HTTP/1 server, never a shard, so a slow scrape or a
//! command that lists a directory cannot delay a client request. The listener
//! is bound before [`serve`] returns, so a port in use is an error at start.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};

/// A running listener; dropping it stops its thread.
pub struct Endpoint {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `addr` (port 0 picks one) and answers every request with `answer`
/// on a thread named `name`, until dropped.
pub fn serve<F, Fut>(addr: SocketAddr, name: &str, answer: F) -> std::io::Result<Endpoint>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + 'static,
{
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let listener = {
        let _in_runtime = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    let answer = answer.clone();
                    let service = hyper::service::service_fn(move |request| {
                        let reply = answer(request);
                        async move { Ok::<_, Infallible>(reply.await) }
                    });
                    tokio::task::spawn_local(async move {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    });
                }
            });
        })?;
    Ok(Endpoint {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// A response of `status` with `body` of `content_type`.
pub fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}
