//! The CH class: `version.bind`/`version.server` and `id.server`/`hostname.bind`
//! (RFC 4892) answered with the configured text, everything else REFUSED.

use sextant_wire::consts::TYPE_TXT;
use sextant_wire::{QueryView, Rcode, write_chaos_txt};

use crate::frontend::{Decision, Frontend};
use crate::policy::Policy;
use crate::rrl::QuestionKey;
use crate::stats;

/// `version.bind`, `version.server` (RFC 4892 §2), lower-cased wire form.
const VERSION_NAMES: [&[u8]; 2] = [b"\x07version\x04bind\x00", b"\x07version\x06server\x00"];
/// `id.server` (RFC 4892), `hostname.bind`.
const IDENTITY_NAMES: [&[u8]; 2] = [b"\x02id\x06server\x00", b"\x08hostname\x04bind\x00"];

impl Frontend {
    /// CH class: the server's version or identity when configured, REFUSED otherwise.
    pub(crate) fn chaos(&self, packet: &[u8], view: &QueryView, policy: &Policy) -> Decision {
        let name = view.question.name_wire();
        let text = if view.question.qtype != TYPE_TXT {
            None
        } else if VERSION_NAMES.contains(&name) {
            policy.version.as_deref()
        } else if IDENTITY_NAMES.contains(&name) {
            policy.identity.as_deref()
        } else {
            None
        };
        match text {
            Some(text) => {
                let mut out = Vec::with_capacity(64 + text.len());
                write_chaos_txt(&mut out, packet, view, text, self.udp_payload_size);
                stats::answered(stats::Source::Listener, &out);
                Decision::Reply {
                    wire: out,
                    question: Some(QuestionKey::of(view)),
                    from: None,
                }
            }
            None => self.reply(packet, &view.header, Some(view), Rcode::REFUSED, None),
        }
    }
}
