//! Modbus TCP frames for pipelined reads: the MBAP header (Modbus Messaging on TCP/IP
//! Implementation Guide V1.0b, 3.1.3) around the read requests and answers of function codes 1
//! to 4 (Modbus Application Protocol V1.1b3, 6.1 to 6.4). tokio-modbus's client waits for each
//! answer before it sends the next request; a line with `max_transactions` above 1 sends a
//! device's requests together and matches the answers by transaction id
//! ([`crate::pipelined`]). Pure: bytes in, answers out.

use crate::profile::Table;

/// The MBAP header: transaction id, protocol id, length, unit id.
pub const HEADER_LEN: usize = 7;
/// The longest length field: a 260-byte ADU less the six bytes before the unit id.
const MAX_LENGTH_FIELD: usize = 254;

/// What a device answered to one read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Registers, or bits as 0 and 1, as many as were asked for.
    Words(Vec<u16>),
    /// A Modbus exception code.
    Exception(u8),
}

/// An answer that is not a well-formed answer to what was asked: the connection cannot be
/// trusted any more.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed Modbus TCP answer: {0}")]
pub struct FrameError(pub String);

fn function_code(table: Table) -> u8 {
    match table {
        Table::Coil => 0x01,
        Table::Discrete => 0x02,
        Table::Holding => 0x03,
        Table::Input => 0x04,
    }
}

/// Appends the request frame reading `count` items of `table` from `start` on `unit`.
pub fn encode_read(out: &mut Vec<u8>, tid: u16, unit: u8, table: Table, start: u16, count: u16) {
    out.extend_from_slice(&tid.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 6, unit, function_code(table)]);
    out.extend_from_slice(&start.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
}

/// One answer frame: its transaction id, unit id and PDU (function code first).
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub tid: u16,
    pub unit: u8,
    pub pdu: Vec<u8>,
}

/// Takes the first whole frame off the front of `buf`, if one has arrived.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<Frame>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let tid = u16::from_be_bytes([buf[0], buf[1]]);
    let protocol = u16::from_be_bytes([buf[2], buf[3]]);
    let length = u16::from_be_bytes([buf[4], buf[5]]) as usize;
    if protocol != 0 {
        return Err(FrameError(format!("protocol id {protocol} in transaction {tid} (Modbus is 0)")));
    }
    if !(2..=MAX_LENGTH_FIELD).contains(&length) {
        return Err(FrameError(format!("length {length} in transaction {tid} (2 to {MAX_LENGTH_FIELD})")));
    }
    let total = HEADER_LEN - 1 + length;
    if buf.len() < total {
        return Ok(None);
    }
    let frame = Frame { tid, unit: buf[6], pdu: buf[HEADER_LEN..total].to_vec() };
    buf.drain(..total);
    Ok(Some(frame))
}

/// The answer in `pdu` to a read of `count` items of `table`.
pub fn decode_read(pdu: &[u8], table: Table, count: u16) -> Result<Reply, FrameError> {
    let asked = function_code(table);
    let Some((&function, rest)) = pdu.split_first() else {
        return Err(FrameError("empty PDU".into()));
    };
    if function == asked | 0x80 {
        return match rest {
            [code] => Ok(Reply::Exception(*code)),
            _ => Err(FrameError(format!("exception answer of {} bytes (expected 2)", pdu.len()))),
        };
    }
    if function != asked {
        return Err(FrameError(format!(
            "function {function:#04x} answers a request of function {asked:#04x}"
        )));
    }
    let expected = if table.is_bits() { (count as usize).div_ceil(8) } else { count as usize * 2 };
    match rest.split_first() {
        Some((&byte_count, data)) if byte_count as usize == expected && data.len() == expected => {}
        Some((&byte_count, data)) => {
            return Err(FrameError(format!(
                "{byte_count} data bytes announced and {} sent for {count} {} (expected {expected})",
                data.len(),
                table.name()
            )))
        }
        None => return Err(FrameError(format!("function {function:#04x} answer without a byte count"))),
    }
    let data = &rest[1..];
    let words = if table.is_bits() {
        (0..count as usize).map(|i| u16::from(data[i / 8] >> (i % 8) & 1)).collect()
    } else {
        data.chunks_exact(2).map(|w| u16::from_be_bytes([w[0], w[1]])).collect()
    };
    Ok(Reply::Words(words))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_request_is_the_twelve_bytes_of_the_spec_example() {
        // Implementation Guide 3.1.3 and Application Protocol 6.3: read 3 holding registers
        // from 107 (0x6B) of unit 0x11, transaction 1.
        let mut out = Vec::new();
        encode_read(&mut out, 1, 0x11, Table::Holding, 0x6B, 3);
        assert_eq!(out, [0, 1, 0, 0, 0, 6, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03]);
        out.clear();
        encode_read(&mut out, 0xBEEF, 1, Table::Coil, 19, 19);
        assert_eq!(out, [0xBE, 0xEF, 0, 0, 0, 6, 1, 0x01, 0, 19, 0, 19]);
    }

    #[test]
    fn frames_are_taken_whole_and_only_when_whole() {
        let answer = [0, 7, 0, 0, 0, 9, 0x11, 0x03, 6, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64];
        let mut buf = answer[..10].to_vec();
        assert_eq!(take_frame(&mut buf), Ok(None));
        assert_eq!(buf.len(), 10, "a partial frame stays in the buffer");
        buf.extend_from_slice(&answer[10..]);
        buf.extend_from_slice(&[0, 8, 0]); // the start of the next one
        let frame = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!((frame.tid, frame.unit), (7, 0x11));
        assert_eq!(decode_read(&frame.pdu, Table::Holding, 3), Ok(Reply::Words(vec![0x022B, 0, 0x64])));
        assert_eq!(buf, [0, 8, 0]);
        assert_eq!(take_frame(&mut buf), Ok(None));
    }

    #[test]
    fn bits_come_least_significant_first() {
        // Application Protocol 6.1: coils 20..38, status CD 6B 05.
        let pdu = [0x01, 3, 0xCD, 0x6B, 0x05];
        let Ok(Reply::Words(bits)) = decode_read(&pdu, Table::Coil, 19) else { panic!() };
        let expected = "1011001111010110101";
        assert_eq!(bits.iter().map(|b| b.to_string()).collect::<String>(), expected);
    }

    #[test]
    fn exceptions_are_answers_and_bad_frames_are_errors() {
        assert_eq!(decode_read(&[0x84, 2], Table::Input, 4), Ok(Reply::Exception(2)));
        let bad = |pdu: &[u8], table, count| decode_read(pdu, table, count).unwrap_err().0;
        assert_eq!(
            bad(&[0x04, 4, 0, 1, 0, 2], Table::Holding, 2),
            "function 0x04 answers a request of function 0x03"
        );
        assert_eq!(
            bad(&[0x03, 4, 0, 1, 0, 2], Table::Holding, 3),
            "4 data bytes announced and 4 sent for 3 holding (expected 6)"
        );
        assert_eq!(
            bad(&[0x03, 6, 0, 1], Table::Holding, 3),
            "6 data bytes announced and 2 sent for 3 holding (expected 6)"
        );
        assert_eq!(bad(&[0x83], Table::Holding, 3), "exception answer of 1 bytes (expected 2)");
        assert_eq!(bad(&[], Table::Holding, 3), "empty PDU");
        let mut buf = vec![0, 1, 0, 9, 0, 3, 1, 3, 0];
        assert_eq!(take_frame(&mut buf).unwrap_err().0, "protocol id 9 in transaction 1 (Modbus is 0)");
        let mut buf = vec![0, 1, 0, 0, 1, 0, 1, 3, 0];
        assert_eq!(take_frame(&mut buf).unwrap_err().0, "length 256 in transaction 1 (2 to 254)");
    }
}
