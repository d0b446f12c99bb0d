//! Frames: how ZooKeeper's client protocol cuts a byte stream into records.
//!
//! A frame is a 4-byte big-endian length, then that many bytes of body. The
//! length is a jute `int`: a negative one is out of range, and so is one over
//! the receiver's maximum (`jute.maxbuffer` on a server; a client's own bound
//! for replies). Such a frame cannot be skipped safely, so whoever reads it
//! closes that connection, and only that one.
//!
//! Invariants: a body [`split`] returns is exactly the length announced and at
//! most the maximum; an oversized length is refused from the header alone,
//! before any of its body is buffered. [`split`] is the only code of the
//! server, herd-bench and herd-cli that reads a frame's length, and [`begin`]
//! with [`end`] the only code that writes one; [`Frames`] buffers a stream
//! around [`split`] for all three, whatever their I/O. (The integration tests
//! read frames their own way, on purpose.)

use std::fmt;
use std::io;

/// The bytes of a frame's length.
pub const HEADER_LEN: usize = 4;

/// Why the front of a buffer is not a whole frame yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoFrame {
    /// The buffer holds part of a frame: it needs `need` bytes from its
    /// start (header included) before the frame is whole.
    Incomplete { need: usize },
    /// The header announces `len` bytes: negative, or over `max`.
    TooLarge { len: i32, max: usize },
}

impl fmt::Display for NoFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoFrame::Incomplete { need } => {
                write!(f, "stream ended inside a frame of {need} bytes")
            }
            NoFrame::TooLarge { len, max } => {
                write!(f, "frame length {len} out of range (at most {max})")
            }
        }
    }
}

impl std::error::Error for NoFrame {}

/// `Incomplete` (the stream ended) is `UnexpectedEof`; `TooLarge` is
/// `InvalidData`.
impl From<NoFrame> for io::Error {
    fn from(e: NoFrame) -> io::Error {
        let kind = match e {
            NoFrame::Incomplete { .. } => io::ErrorKind::UnexpectedEof,
            NoFrame::TooLarge { .. } => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Cuts the first frame off `buf`: its body (at most `max` bytes) and the
/// bytes after it, or why there is no whole frame at its front.
pub fn split(buf: &[u8], max: usize) -> Result<(&[u8], &[u8]), NoFrame> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Err(NoFrame::Incomplete { need: HEADER_LEN });
    };
    let len = i32::from_be_bytes(*header);
    let body_len = usize::try_from(len).map_err(|_| NoFrame::TooLarge { len, max })?;
    if body_len > max {
        return Err(NoFrame::TooLarge { len, max });
    }
    let need = HEADER_LEN + body_len;
    if buf.len() < need {
        return Err(NoFrame::Incomplete { need });
    }
    Ok((&buf[HEADER_LEN..need], &buf[need..]))
}

/// Starts a frame in `out`; returns where its length goes.
pub fn begin(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    at
}

/// Writes the length of the frame [`begin`] started at `at`.
pub fn end(out: &mut [u8], at: usize) {
    let len = (out.len() - at - HEADER_LEN) as i32;
    out[at..at + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
}

/// A receive buffer that hands out whole frames, for any kind of I/O: take
/// frames with [`Frames::take`]; when it answers `Incomplete { need }`, read
/// into [`Frames::spare`]`(need)` and report the count with
/// [`Frames::received`].
///
/// The buffer grows to the largest frame received (at most the maximum plus
/// its header) and never shrinks; consumed bytes are reclaimed by moving the
/// rest to the front when room runs out.
pub struct Frames {
    buf: Vec<u8>,
    /// The first byte not yet taken as a frame.
    start: usize,
    /// The end of the bytes received.
    end: usize,
    max: usize,
}

impl Frames {
    /// A buffer of `capacity` bytes (the most one read takes while frames are
    /// smaller) for frames of at most `max` bytes of body.
    pub fn new(max: usize, capacity: usize) -> Frames {
        Frames {
            buf: vec![0; capacity.max(HEADER_LEN)],
            start: 0,
            end: 0,
            max,
        }
    }

    /// The bytes received and not yet taken as a frame.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Takes the next whole frame's body out of the buffer.
    pub fn take(&mut self) -> Result<&[u8], NoFrame> {
        let (body, rest) = split(&self.buf[self.start..self.end], self.max)?;
        self.start = self.end - rest.len();
        Ok(body)
    }

    /// Where to receive more bytes: never empty while fewer than `need` are
    /// buffered, and room enough for `need` in all.
    pub fn spare(&mut self, need: usize) -> &mut [u8] {
        if self.buf.len() - self.start < need || self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were received at the front of [`Frames::spare`].
    pub fn received(&mut self, n: usize) {
        assert!(n <= self.buf.len() - self.end, "received more than spare");
        self.end += n;
    }

    /// The next frame from a blocking reader, decoded by `decode`; an error
    /// once the stream ends (`UnexpectedEof`), or for a frame over the
    /// maximum (`InvalidData`).
    pub fn read_from<T>(
        &mut self,
        r: &mut impl io::Read,
        decode: impl FnOnce(&[u8]) -> T,
    ) -> io::Result<T> {
        loop {
            match self.take() {
                Ok(frame) => return Ok(decode(frame)),
                Err(incomplete @ NoFrame::Incomplete { need }) => {
                    let got = match r.read(self.spare(need)) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        read => read?,
                    };
                    if got == 0 {
                        return Err(incomplete.into());
                    }
                    self.received(got);
                }
                Err(too_large) => return Err(too_large.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let at = begin(&mut out);
        out.extend_from_slice(body);
        end(&mut out, at);
        out
    }

    #[test]
    fn begin_and_end_write_the_length() {
        assert_eq!(frame(b"abc"), [0, 0, 0, 3, b'a', b'b', b'c']);
        let mut two = frame(b"x");
        let at = begin(&mut two);
        two.extend_from_slice(&[9; 300]);
        end(&mut two, at);
        assert_eq!(two[..5], [0, 0, 0, 1, b'x']);
        assert_eq!(two[5..9], [0, 0, 1, 44]);
        assert_eq!(two.len(), 5 + 4 + 300);
    }

    #[test]
    fn incomplete_header() {
        for cut in 0..HEADER_LEN {
            assert_eq!(
                split(&[0, 0, 0, 5][..cut], 10),
                Err(NoFrame::Incomplete { need: 4 }),
                "{cut} bytes"
            );
        }
    }

    #[test]
    fn incomplete_body() {
        assert_eq!(
            split(&[0, 0, 0, 5, 1, 2], 10),
            Err(NoFrame::Incomplete { need: 9 })
        );
        assert_eq!(
            split(&[0, 0, 0, 5], 10),
            Err(NoFrame::Incomplete { need: 9 })
        );
    }

    #[test]
    fn exact_frame() {
        let bytes = frame(&[1, 2, 3, 4, 5]);
        assert_eq!(
            split(&bytes, 5),
            Ok((&[1u8, 2, 3, 4, 5][..], &[][..])),
            "a body of exactly the maximum"
        );
    }

    #[test]
    fn two_frames_in_one_buffer() {
        let mut bytes = frame(b"first");
        bytes.extend_from_slice(&frame(b"second"));
        bytes.extend_from_slice(&[0, 0]);
        let (body, rest) = split(&bytes, 100).unwrap();
        assert_eq!(body, b"first");
        assert_eq!(rest.len(), 4 + 6 + 2);
        let (body, rest) = split(rest, 100).unwrap();
        assert_eq!(body, b"second");
        assert_eq!(rest, [0, 0]);
        assert_eq!(split(rest, 100), Err(NoFrame::Incomplete { need: 4 }));
    }

    #[test]
    fn oversized_and_negative_lengths() {
        // Judged from the header alone, before any body arrives.
        assert_eq!(
            split(&[0, 0, 0, 11], 10),
            Err(NoFrame::TooLarge { len: 11, max: 10 })
        );
        assert_eq!(
            split(&[0xff, 0xff, 0xff, 0xff], 10),
            Err(NoFrame::TooLarge { len: -1, max: 10 })
        );
        assert_eq!(
            split(&[0x80, 0, 0, 0], usize::MAX),
            Err(NoFrame::TooLarge {
                len: i32::MIN,
                max: usize::MAX
            })
        );
        // A four-letter word read as a length ("ruok" is 1.9 billion bytes).
        assert_eq!(
            split(b"ruok", 0xfffff),
            Err(NoFrame::TooLarge {
                len: 0x7275_6f6b,
                max: 0xfffff
            })
        );
        let e = io::Error::from(NoFrame::TooLarge { len: 11, max: 10 });
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), "frame length 11 out of range (at most 10)");
    }

    #[test]
    fn zero_length_is_an_empty_frame() {
        assert_eq!(split(&[0, 0, 0, 0, 7], 0), Ok((&[][..], &[7u8][..])));
    }

    /// Feeds `stream` to `frames` `chunk` bytes per receive; the bodies taken.
    fn receive(frames: &mut Frames, stream: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let mut bodies = Vec::new();
        let mut stream = stream;
        loop {
            match frames.take() {
                Ok(body) => bodies.push(body.to_vec()),
                Err(NoFrame::Incomplete { need }) if !stream.is_empty() => {
                    let spare = frames.spare(need);
                    assert!(!spare.is_empty());
                    let n = chunk.min(spare.len()).min(stream.len());
                    spare[..n].copy_from_slice(&stream[..n]);
                    frames.received(n);
                    stream = &stream[n..];
                }
                Err(NoFrame::Incomplete { .. }) => return bodies,
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn frames_across_receives() {
        let bodies: Vec<Vec<u8>> = vec![b"a".to_vec(), Vec::new(), vec![7; 100], b"tail".to_vec()];
        let stream: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
        for chunk in [1, 3, 4, 5, 16, 1000] {
            // A buffer smaller than one frame: it grows to hold it.
            let mut frames = Frames::new(100, 8);
            assert_eq!(
                receive(&mut frames, &stream, chunk),
                bodies,
                "chunk {chunk}"
            );
            assert!(frames.buffered().is_empty());
        }
    }

    #[test]
    fn frames_keep_a_partial_frame_and_refuse_an_oversized_one() {
        let mut frames = Frames::new(10, 16);
        let mut stream = frame(b"ok");
        stream.extend_from_slice(&[0, 0, 0, 3, b'x']);
        assert_eq!(receive(&mut frames, &stream, 2), vec![b"ok".to_vec()]);
        assert_eq!(frames.buffered(), [0, 0, 0, 3, b'x']);
        assert_eq!(frames.take(), Err(NoFrame::Incomplete { need: 7 }));

        let mut frames = Frames::new(10, 16);
        let spare = frames.spare(HEADER_LEN);
        spare[..4].copy_from_slice(&[0, 0, 0, 11]);
        frames.received(4);
        assert_eq!(frames.take(), Err(NoFrame::TooLarge { len: 11, max: 10 }));
        assert_eq!(frames.buffered(), [0, 0, 0, 11], "nothing is taken");
    }

    #[test]
    fn read_from_a_blocking_reader_frame_by_frame_until_the_stream_ends() {
        let mut bytes = frame(b"one");
        bytes.extend(frame(&[7; 100]));
        bytes.extend(&frame(b"cut")[..5]);
        let mut reader = &bytes[..];
        let mut frames = Frames::new(200, 8);
        assert_eq!(
            frames.read_from(&mut reader, <[u8]>::to_vec).unwrap(),
            b"one"
        );
        assert_eq!(frames.read_from(&mut reader, <[u8]>::len).unwrap(), 100);
        let ended = frames.read_from(&mut reader, <[u8]>::len).unwrap_err();
        assert_eq!(ended.kind(), io::ErrorKind::UnexpectedEof, "{ended}");
        let big = frame(&[1; 300]);
        let err = Frames::new(200, 8)
            .read_from(&mut &big[..], <[u8]>::len)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }
}
