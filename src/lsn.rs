//! PostgreSQL WAL positions (`XLogRecPtr`), as printed by PostgreSQL: `16/B374D848`.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl FromStr for Lsn {
    type Err = String;
    fn from_str(s: &str) -> Result<Lsn, String> {
        let s = s.trim();
        let (hi, lo) = s.split_once('/').ok_or_else(|| format!("not an LSN: \"{s}\""))?;
        let parse =
            |h: &str| u32::from_str_radix(h, 16).map_err(|_| format!("not an LSN: \"{s}\""));
        if hi.is_empty() || lo.is_empty() || hi.len() > 8 || lo.len() > 8 {
            return Err(format!("not an LSN: \"{s}\""));
        }
        Ok(Lsn((u64::from(parse(hi)?) << 32) | u64::from(parse(lo)?)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_like_postgresql() {
        for s in ["0/0", "0/3000028", "16/B374D848", "FFFFFFFF/FFFFFFFF"] {
            assert_eq!(s.parse::<Lsn>().unwrap().to_string(), s);
        }
        assert_eq!("1/0".parse::<Lsn>().unwrap(), Lsn(1 << 32));
        assert_eq!(" 0/10 ".parse::<Lsn>().unwrap(), Lsn(16));
    }

    #[test]
    fn refuses_what_is_not_an_lsn() {
        for s in ["", "0", "/1", "1/", "g/1", "1/2/3", "100000000/0", "12345"] {
            assert!(s.parse::<Lsn>().is_err(), "{s}");
        }
    }

    #[test]
    fn orders_numerically() {
        assert!("0/A".parse::<Lsn>().unwrap() > "0/9".parse::<Lsn>().unwrap());
        assert!("1/0".parse::<Lsn>().unwrap() > "0/FFFFFFFF".parse::<Lsn>().unwrap());
    }

    proptest::proptest! {
        #[test]
        fn prints_what_it_parses(v: u64) {
            proptest::prop_assert_eq!(Lsn(v).to_string().parse::<Lsn>(), Ok(Lsn(v)));
        }

        #[test]
        fn any_text_parses_or_fails_without_panic(s in "\\PC*") {
            if let Ok(l) = s.parse::<Lsn>() {
                proptest::prop_assert_eq!(l.to_string().parse::<Lsn>(), Ok(l));
            }
        }
    }
}
