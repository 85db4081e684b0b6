//! Debug knobs: one parser for `--debug "gctrace=1,gccheckmark=1"` and the `STKBAR_DEBUG`
//! environment variable, with Go's `GODEBUG` names.
//!
//! Invariant: a knob string either parses completely into [`DebugKnobs`] or is rejected with a
//! one-line [`KnobError`] naming the bad item and listing the valid knobs; nothing is half-applied.
//! Items are `name=value`, comma-separated; an empty string means the defaults. A later item
//! overrides an earlier one of the same name, as in Go.

use std::fmt;

/// The knobs, with Go's meanings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DebugKnobs {
    /// `gctrace=1`: one line per cycle on stderr, in Go's shape, plus the re-scan figures.
    pub gctrace: u32,
    /// `gccheckmark=1`: after mark termination, mark again from every root with the world stopped
    /// and fail on any reachable object the real mark missed.
    pub gccheckmark: bool,
    /// `gcstackbarrieroff=1`: install no stack barriers.
    pub gcstackbarrieroff: bool,
    /// `gcstackbarrierall=1`: a stack barrier on every frame.
    pub gcstackbarrierall: bool,
    /// `invalidptr=1` (default): a pointer slot holding a value in the first page, or a heap
    /// address outside every allocated object, is a fatal error.
    pub invalidptr: bool,
}

impl Default for DebugKnobs {
    fn default() -> Self {
        DebugKnobs {
            gctrace: 0,
            gccheckmark: false,
            gcstackbarrieroff: false,
            gcstackbarrierall: false,
            invalidptr: true,
        }
    }
}

/// The knob names, for messages.
pub const KNOBS: &str = "gctrace, gccheckmark, gcstackbarrieroff, gcstackbarrierall, invalidptr";

/// A knob string that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad debug knob {item:?}: {why} (valid knobs: {KNOBS})")]
pub struct KnobError {
    /// The offending item.
    pub item: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl DebugKnobs {
    /// Parses a knob string on top of the defaults.
    pub fn parse(s: &str) -> Result<DebugKnobs, KnobError> {
        let mut k = DebugKnobs::default();
        if s.trim().is_empty() {
            return Ok(k);
        }
        for item in s.split(',') {
            let err = |why| KnobError {
                item: item.to_owned(),
                why,
            };
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| err("expected name=value"))?;
            let value: u32 = value
                .trim()
                .parse()
                .map_err(|_| err("the value must be a non-negative integer"))?;
            let flag = |v: u32| match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(err("the value must be 0 or 1")),
            };
            match name.trim() {
                "gctrace" => {
                    if value > 2 {
                        return Err(err("the value must be 0, 1 or 2"));
                    }
                    k.gctrace = value;
                }
                "gccheckmark" => k.gccheckmark = flag(value)?,
                "gcstackbarrieroff" => k.gcstackbarrieroff = flag(value)?,
                "gcstackbarrierall" => k.gcstackbarrierall = flag(value)?,
                "invalidptr" => k.invalidptr = flag(value)?,
                "" => return Err(err("empty knob name")),
                _ => return Err(err("unknown knob")),
            }
        }
        if k.gcstackbarrieroff && k.gcstackbarrierall {
            return Err(KnobError {
                item: s.to_owned(),
                why: "gcstackbarrieroff and gcstackbarrierall contradict each other",
            });
        }
        Ok(k)
    }

    /// The knobs from `flag` if given, else from `STKBAR_DEBUG`, else the defaults.
    pub fn from_flag_or_env(flag: Option<&str>) -> Result<DebugKnobs, KnobError> {
        match flag {
            Some(s) => DebugKnobs::parse(s),
            None => DebugKnobs::parse(&std::env::var("STKBAR_DEBUG").unwrap_or_default()),
        }
    }
}

impl fmt::Display for DebugKnobs {
    /// The knob string that parses back to these knobs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gctrace={},gccheckmark={},gcstackbarrieroff={},gcstackbarrierall={},invalidptr={}",
            self.gctrace,
            u8::from(self.gccheckmark),
            u8::from(self.gcstackbarrieroff),
            u8::from(self.gcstackbarrierall),
            u8::from(self.invalidptr)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_parse_and_print_back() {
        let k = DebugKnobs::parse("gctrace=1, gccheckmark=1,invalidptr=0").unwrap();
        assert_eq!(k.gctrace, 1);
        assert!(k.gccheckmark && !k.invalidptr);
        assert_eq!(DebugKnobs::parse(&k.to_string()).unwrap(), k);
        assert_eq!(DebugKnobs::parse("").unwrap(), DebugKnobs::default());
        assert!(
            DebugKnobs::default().invalidptr,
            "invalidptr is on by default"
        );
        assert_eq!(
            DebugKnobs::parse("gctrace=1,gctrace=0").unwrap().gctrace,
            0,
            "the last item wins"
        );
    }

    #[test]
    fn bad_knob_strings_are_one_line_errors() {
        for bad in [
            "gctrace",
            "gctrace=x",
            "gctrace=-1",
            "gctrace=3",
            "nosuch=1",
            "gccheckmark=2",
            "=1",
            "gctrace=1,",
            ",",
            "gcstackbarrieroff=1,gcstackbarrierall=1",
            "wbshadow=1",
        ] {
            let e = DebugKnobs::parse(bad).unwrap_err().to_string();
            assert!(!e.contains('\n') && e.contains("valid knobs"), "{bad}: {e}");
        }
    }
}
