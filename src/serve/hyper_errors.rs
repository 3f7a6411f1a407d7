//! hyper answers a request it cannot parse on its own, before any handler sees it: 400 for
//! a malformed request line or header, 431 for headers over its limits, 414 for a URI too
//! long, 408 for headers slower than the read timeout, each with an empty body. Every other
//! error of the server is DeepStack-shaped JSON, which the clients show; so the connection's
//! stream rewrites exactly those answers on their way out: a status line of 400 or more whose
//! head says `content-length: 0` and ends the write (every answer of qdet's own handlers has
//! a body), into the same JSON with the same status.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose hyper-made error answers carry JSON bodies.
pub(super) struct JsonErrors<S> {
    inner: S,
    /// A rewritten answer not yet written out, and how much of it is.
    pending: Vec<u8>,
    sent: usize,
}

impl<S> JsonErrors<S> {
    pub(super) fn new(inner: S) -> JsonErrors<S> {
        JsonErrors { inner, pending: Vec::new(), sent: 0 }
    }
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    fn write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => self.sent += n,
            }
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.write_pending(cx))?;
        match with_json_body(buf) {
            Some(answer) => {
                this.pending = answer;
                // The caller's bytes are taken; what the socket does not take now goes out on
                // the next write, flush or shutdown.
                if let Poll::Ready(Err(e)) = this.write_pending(cx) {
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(buf.len()))
            }
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.write_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.write_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

const EMPTY: &str = "\r\ncontent-length: 0\r\n";

/// The answer `head` with a JSON body, when it is a bodiless error answer as hyper makes them.
fn with_json_body(head: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(head).ok()?;
    let status_line = head.strip_prefix("HTTP/1.1 ")?.split("\r\n").next()?;
    let (code, phrase) = status_line.split_once(' ')?;
    let code: u16 = code.parse().ok()?;
    let at = head.to_ascii_lowercase().find(EMPTY)?;
    if code < 400 || !head.ends_with("\r\n\r\n") {
        return None;
    }
    let error = match code {
        400 => "the request is not valid HTTP/1.1".to_string(),
        408 => "the request headers did not arrive within --read-timeout".to_string(),
        414 => "the request URI is too long".to_string(),
        431 => "the request headers are too large or too many".to_string(),
        _ => phrase.to_ascii_lowercase(),
    };
    let body = serde_json::json!({ "success": false, "error": error, "code": code }).to_string();
    let length = format!("\r\ncontent-type: application/json\r\ncontent-length: {}\r\n", body.len());
    Some([&head[..at], &length, &head[at + EMPTY.len()..], &body].concat().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_error_answers_get_json() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 11:52:27 GMT\r\n\r\n";
        let got = String::from_utf8(with_json_body(hyper_400).unwrap()).unwrap();
        let body = r#"{"code":400,"error":"the request is not valid HTTP/1.1","success":false}"#;
        assert_eq!(
            got,
            format!(
                "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\ndate: Mon, 07 Dec 2026 11:52:27 GMT\r\n\r\n{body}",
                body.len()
            )
        );
        let teapot = b"HTTP/1.1 418 I'm a teapot\r\ncontent-length: 0\r\n\r\n";
        assert!(String::from_utf8(with_json_body(teapot).unwrap()).unwrap().contains(r#""error":"i'm a teapot""#));
        // A success, an answer with a body, or a head cut in two are left alone.
        assert_eq!(with_json_body(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(with_json_body(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}"), None);
        assert_eq!(with_json_body(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"), None);
        assert_eq!(with_json_body(b"content-length: 0\r\n\r\n"), None);
    }
}
