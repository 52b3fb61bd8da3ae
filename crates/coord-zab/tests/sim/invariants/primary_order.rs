//! Primary order: delivered zxids strictly increase, and each epoch's txns come in counter
//! order 1, 2, 3, ... with no gap.

use coord_zab::Zxid;

/// The longest delivered sequence, whose last zxid is `last`, grows by `next`.
pub fn on_extend(last: Option<Zxid>, next: Zxid) -> Result<(), String> {
    let last = last.unwrap_or(Zxid::ZERO);
    if next <= last {
        return Err(format!("primary order: {next} delivered after {last}"));
    }
    let expected = if next.epoch() == last.epoch() {
        last.counter() + 1
    } else {
        1
    };
    if next.counter() != expected {
        return Err(format!(
            "primary order: {next} delivered after {last}, expected counter {expected}"
        ));
    }
    Ok(())
}
