//! Server frames as the client receives them: a byte stream split with `split_frame`, each
//! body opened with `decode::<ServerFrame>`. The whole input is also decoded as a bare body.
//! Must never panic; whatever decodes must survive an encode/decode round trip unchanged.
#![no_main]

use coord_proto::frame::{self, DEFAULT_MAX_FRAME, HEADER_LEN};
use coord_proto::{ReplyBody, ServerFrame};
use libfuzzer_sys::fuzz_target;

fn check(f: &ServerFrame) {
    let bytes = frame::encode(f).expect("a decoded frame re-encodes");
    let back: ServerFrame = frame::decode(&bytes[HEADER_LEN..]).expect("a re-encoded frame decodes");
    assert_eq!(&back, f);
    // What a client does with codes it did not expect: describe them.
    match f {
        ServerFrame::Refused { code, .. } | ServerFrame::Closing { code, .. } => {
            let _ = (code.zk_code(), code.to_string());
        }
        ServerFrame::Reply { body: ReplyBody::Err(code) | ReplyBody::MultiErr { code, .. }, .. } => {
            let _ = (code.zk_code(), code.to_string());
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = frame::decode::<ServerFrame>(data) {
        check(&f);
    }
    for limit in [DEFAULT_MAX_FRAME, 64] {
        let mut rest = data;
        while let Ok(Some((body, tail))) = frame::split_frame(rest, limit) {
            assert!(body.len() <= limit);
            if let Ok(f) = frame::decode::<ServerFrame>(body) {
                check(&f);
            }
            rest = tail;
        }
    }
});
