//! Reading a fuzz input as a sequence of small choices ([`Input`]), and the
//! prefix lengths streaming detectors are re-asked at ([`prefix_lens`]).
//! A leaf: the targets use it; it uses none of them.

/// The input read as a sequence of small choices; an exhausted input reads
/// as zeros, so every input is a valid one.
pub(crate) struct Input<'a>(pub(crate) &'a [u8]);

impl<'a> Input<'a> {
    pub(crate) fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// A length byte, then up to that many bytes.
    pub(crate) fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte()).min(self.0.len());
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }

    pub(crate) fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// The prefix lengths at which a streaming detector is asked again: every
/// one up to 128 bytes, then a sample (a detector runs in linear time, so
/// checking them all would be quadratic).
pub(crate) fn prefix_lens(len: usize) -> impl Iterator<Item = usize> {
    (0..len).filter(move |&k| k <= 128 || k % 61 == 0 || k + 1 == len)
}
