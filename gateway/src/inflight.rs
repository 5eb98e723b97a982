//! Which spool record each MQTT publish carries, so a record is acknowledged in the spool only
//! once the broker's PUBACK for it has come, and only as a prefix.
//!
//! rumqttc gives no per-publish completion: a publish is queued in its request channel, the
//! event loop later reports `Outgoing::Publish(pkid)` when it writes it (in queue order) and
//! `Incoming::PubAck(pkid)` when the broker has it. [`Inflight`] follows a publish through
//! those steps: the tag given at queueing goes to the next `Outgoing::Publish`, the pkid then
//! leads to the tag at PUBACK. Records are sent in id order; acknowledgements may come out of
//! order (or be missing, for a record lost with a connection), so the spool is acknowledged
//! through the highest id whose predecessors (as sent) are all acknowledged.
//!
//! A publish only counts within its connection: when the link drops, every publish not yet
//! acknowledged is forgotten (the publisher drops them from rumqttc's queue too) and the sender
//! sends again from the spool's first unacknowledged record. Pure; no I/O.

use std::collections::{HashMap, VecDeque};

/// What a publish carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// The spool record with this id.
    Record(u64),
    /// A message that bypasses the spool (birth, status).
    Other,
}

#[derive(Debug, Default)]
pub struct Inflight {
    /// Tags of publishes queued in the client, not yet written, in queue order.
    queued: VecDeque<Tag>,
    /// Written publishes awaiting their PUBACK.
    by_pkid: HashMap<u16, Tag>,
    /// Records sent on this connection and not yet acknowledged as a prefix, in send order,
    /// each with whether its PUBACK came.
    records: VecDeque<(u64, bool)>,
    /// The highest record id acknowledged as a prefix (0: none yet).
    acked_through: u64,
}

impl Inflight {
    pub fn new() -> Inflight {
        Inflight::default()
    }

    /// A publish was queued in the client.
    pub fn queued(&mut self, tag: Tag) {
        if let Tag::Record(id) = tag {
            self.records.push_back((id, false));
        }
        self.queued.push_back(tag);
    }

    /// The event loop wrote a publish with this packet id (`Outgoing::Publish`).
    pub fn written(&mut self, pkid: u16) {
        if let Some(tag) = self.queued.pop_front() {
            self.by_pkid.insert(pkid, tag);
        }
    }

    /// The broker acknowledged `pkid`. Returns the new prefix to acknowledge in the spool when
    /// it moved.
    pub fn acked(&mut self, pkid: u16) -> Option<u64> {
        let Some(Tag::Record(id)) = self.by_pkid.remove(&pkid) else { return None };
        if let Some(entry) = self.records.iter_mut().find(|(r, _)| *r == id) {
            entry.1 = true;
        }
        self.advance()
    }

    /// A record that is not sent (it could not be decoded): done, as if acknowledged.
    pub fn skipped(&mut self, id: u64) -> Option<u64> {
        self.records.push_back((id, true));
        self.advance()
    }

    fn advance(&mut self) -> Option<u64> {
        let mut moved = None;
        while let Some(&(id, true)) = self.records.front() {
            self.records.pop_front();
            self.acked_through = self.acked_through.max(id);
            moved = Some(self.acked_through);
        }
        moved
    }

    /// Records sent and not yet acknowledged.
    pub fn outstanding(&self) -> usize {
        self.records.len()
    }

    /// Publishes queued or written and not yet acknowledged, of any kind.
    pub fn unacknowledged(&self) -> usize {
        self.queued.len() + self.by_pkid.len()
    }

    pub fn acked_through(&self) -> u64 {
        self.acked_through
    }

    /// The connection is gone: nothing in flight counts any more.
    pub fn connection_lost(&mut self) {
        self.queued.clear();
        self.by_pkid.clear();
        self.records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_move_the_prefix_only_when_every_earlier_record_is_acked() {
        let mut f = Inflight::new();
        f.queued(Tag::Record(5));
        f.queued(Tag::Other);
        f.queued(Tag::Record(6));
        f.queued(Tag::Record(8)); // 7 was dropped from the spool: ids may skip
        for pkid in [1, 2, 3, 4] {
            f.written(pkid);
        }
        assert_eq!(f.outstanding(), 3);
        assert_eq!(f.acked(3), None, "6 acked before 5: nothing yet");
        assert_eq!(f.acked(2), None, "the status message is no record");
        assert_eq!(f.acked(1), Some(6));
        assert_eq!(f.acked(1), None, "a duplicate ack changes nothing");
        assert_eq!(f.acked(4), Some(8));
        assert_eq!(f.skipped(9), Some(9), "a record skipped after the prefix moves it");
        assert_eq!(f.outstanding(), 0);
        assert_eq!(f.unacknowledged(), 0);
        assert_eq!(f.acked_through(), 9);
    }

    #[test]
    fn tags_follow_queue_order_to_their_packet_ids() {
        let mut f = Inflight::new();
        f.queued(Tag::Record(1));
        f.queued(Tag::Record(2));
        f.written(7);
        assert_eq!(f.unacknowledged(), 2);
        f.queued(Tag::Record(3));
        f.written(8);
        f.written(9);
        assert_eq!(f.acked(9), None);
        assert_eq!(f.acked(7), Some(1));
        assert_eq!(f.acked(8), Some(3));
    }

    #[test]
    fn a_lost_connection_forgets_what_was_in_flight() {
        let mut f = Inflight::new();
        f.queued(Tag::Record(1));
        f.queued(Tag::Record(2));
        f.written(1);
        assert_eq!(f.acked(1), Some(1));
        f.written(2);
        f.connection_lost();
        assert_eq!(f.acked(2), None, "an ack for the old connection's publish is ignored");
        assert_eq!((f.outstanding(), f.unacknowledged()), (0, 0));
        // Sent again on the new connection; pkids start over.
        f.queued(Tag::Record(2));
        f.written(1);
        assert_eq!(f.acked(1), Some(2));
    }
}
