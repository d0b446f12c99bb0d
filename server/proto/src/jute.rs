//! Jute, ZooKeeper's record encoding: big-endian `int` (4 bytes) and `long` (8),
//! `boolean` as one byte, `buffer` and `ustring` as an int length (-1 = null)
//! followed by bytes, `vector` as an int count (-1 = null) followed by elements.

use engine::acl::{Acl, Id};
use engine::stat::Stat;
use engine::znode::Data;

/// The frame could not be decoded: the connection that sent it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Reads records from one frame.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or(Malformed)?;
        let out = self.buf.get(self.pos..end).ok_or(Malformed)?;
        self.pos = end;
        Ok(out)
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn i32(&mut self) -> Result<i32, Malformed> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub fn i64(&mut self) -> Result<i64, Malformed> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub fn bool(&mut self) -> Result<bool, Malformed> {
        Ok(self.take(1)?[0] != 0)
    }

    /// A `buffer`; null reads as empty.
    pub fn buffer(&mut self) -> Result<&'a [u8], Malformed> {
        match self.i32()? {
            -1 => Ok(&[]),
            n if n < 0 => Err(Malformed),
            n => self.take(n as usize),
        }
    }

    /// A `ustring`; null reads as empty, invalid UTF-8 becomes U+FFFD (which no
    /// valid path contains), as a Java server would decode it.
    pub fn string(&mut self) -> Result<String, Malformed> {
        Ok(String::from_utf8_lossy(self.buffer()?).into_owned())
    }

    fn count(&mut self) -> Result<usize, Malformed> {
        match self.i32()? {
            -1 => Ok(0),
            n if n < 0 => Err(Malformed),
            // Each element takes at least 4 bytes: a count beyond that is a lie.
            n if n as usize > self.remaining() / 4 + 1 => Err(Malformed),
            n => Ok(n as usize),
        }
    }

    pub fn strings(&mut self) -> Result<Vec<String>, Malformed> {
        (0..self.count()?).map(|_| self.string()).collect()
    }

    pub fn acls(&mut self) -> Result<Vec<Acl>, Malformed> {
        (0..self.count()?)
            .map(|_| {
                let perms = self.i32()?;
                let scheme = self.string()?;
                let id = self.string()?;
                Ok(Acl {
                    perms,
                    id: Id { scheme, id },
                })
            })
            .collect()
    }

    /// A `Stat` record, in the order [`Write::stat`] writes it.
    pub fn stat(&mut self) -> Result<Stat, Malformed> {
        Ok(Stat {
            czxid: self.i64()?,
            mzxid: self.i64()?,
            ctime: self.i64()?,
            mtime: self.i64()?,
            version: self.i32()?,
            cversion: self.i32()?,
            aversion: self.i32()?,
            ephemeral_owner: self.i64()?,
            data_length: self.i32()?,
            num_children: self.i32()?,
            pzxid: self.i64()?,
        })
    }

    /// Znode data: a `buffer` whose null is kept apart from empty.
    pub fn data(&mut self) -> Result<Data, Malformed> {
        match self.i32()? {
            -1 => Ok(Data::null()),
            n if n < 0 => Err(Malformed),
            n => Ok(Data::new(self.take(n as usize)?)),
        }
    }
}

/// Appends records to an output buffer.
pub trait Write {
    fn i32(&mut self, v: i32);
    fn i64(&mut self, v: i64);
    fn bool(&mut self, v: bool);
    fn buffer(&mut self, v: &[u8]);
    fn string(&mut self, v: &str);
    fn strings<S: AsRef<str>>(&mut self, v: &[S]);
    fn acls(&mut self, v: &[Acl]);
    fn stat(&mut self, s: &Stat);
    fn data(&mut self, d: Option<&[u8]>);
}

impl Write for Vec<u8> {
    fn i32(&mut self, v: i32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.push(u8::from(v));
    }
    fn buffer(&mut self, v: &[u8]) {
        self.i32(v.len() as i32);
        self.extend_from_slice(v);
    }
    fn string(&mut self, v: &str) {
        self.buffer(v.as_bytes());
    }
    fn strings<S: AsRef<str>>(&mut self, v: &[S]) {
        self.i32(v.len() as i32);
        for s in v {
            self.string(s.as_ref());
        }
    }
    fn acls(&mut self, v: &[Acl]) {
        self.i32(v.len() as i32);
        for a in v {
            self.i32(a.perms);
            self.string(&a.id.scheme);
            self.string(&a.id.id);
        }
    }
    fn data(&mut self, d: Option<&[u8]>) {
        match d {
            Some(b) => self.buffer(b),
            None => self.i32(-1),
        }
    }
    fn stat(&mut self, s: &Stat) {
        self.i64(s.czxid);
        self.i64(s.mzxid);
        self.i64(s.ctime);
        self.i64(s.mtime);
        self.i32(s.version);
        self.i32(s.cversion);
        self.i32(s.aversion);
        self.i64(s.ephemeral_owner);
        self.i32(s.data_length);
        self.i32(s.num_children);
        self.i64(s.pzxid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut out = Vec::new();
        out.i32(-7);
        out.i64(1 << 40);
        out.bool(true);
        out.string("/a/b");
        out.strings(&["x", "yz"]);
        out.acls(&Acl::open_unsafe());
        let stat = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: -6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        out.stat(&stat);
        let mut r = Reader::new(&out);
        assert_eq!(r.i32(), Ok(-7));
        assert_eq!(r.i64(), Ok(1 << 40));
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.string().as_deref(), Ok("/a/b"));
        assert_eq!(r.strings(), Ok(vec!["x".to_owned(), "yz".to_owned()]));
        assert_eq!(r.acls(), Ok(Acl::open_unsafe()));
        assert_eq!(r.stat(), Ok(stat));
        assert_eq!(r.remaining(), 0);
        assert_eq!(r.i32(), Err(Malformed));
        for cut in 0..out.len() {
            let mut r = Reader::new(&out[..cut]);
            let all = (|| -> Result<(), Malformed> {
                r.i32()?;
                r.i64()?;
                r.bool()?;
                r.string()?;
                r.strings()?;
                r.acls()?;
                r.stat()?;
                Ok(())
            })();
            assert_eq!(all, Err(Malformed), "cut at {cut}");
        }
    }

    #[test]
    fn absurd_lengths_are_malformed() {
        let mut out = Vec::new();
        out.i32(i32::MAX);
        assert_eq!(Reader::new(&out).buffer(), Err(Malformed));
        assert_eq!(Reader::new(&out).strings(), Err(Malformed));
        let mut out = Vec::new();
        out.i32(-2);
        assert_eq!(Reader::new(&out).buffer(), Err(Malformed));
    }
}
