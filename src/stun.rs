//! The embedded STUN server (`--stun-addr`): answers RFC 8489 Binding requests over UDP with the
//! address they came from (XOR-MAPPED-ADDRESS), which is all a browser behind a cone NAT needs to
//! learn its public address (a `srflx` candidate). Parsing and encoding are stun-rs's.
//!
//! Nothing but a well-formed Binding request is answered, and the answer (32 bytes for IPv4, 44
//! for IPv6) is never much larger than the request (at least 20 bytes): no amplification.

use std::net::SocketAddr;
use stun_rs::attributes::stun::XorMappedAddress;
use stun_rs::methods::BINDING;
use stun_rs::{MessageClass, MessageDecoderBuilder, MessageEncoderBuilder, StunMessageBuilder};

/// Largest datagram read; a Binding request is 20 bytes plus a few attributes.
const MAX_DATAGRAM: usize = 1500;

/// The answer to one datagram from `from`, if it is a Binding request.
pub fn answer(request: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let (msg, _) = MessageDecoderBuilder::default().build().decode(request).ok()?;
    if msg.method() != BINDING || msg.class() != MessageClass::Request {
        return None;
    }
    let response = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
        .with_transaction_id(*msg.transaction_id())
        .with_attribute(XorMappedAddress::from(from))
        .build();
    let mut buffer = [0u8; 64];
    let size = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buffer, &response)
        .ok()?;
    Some(buffer[..size].to_vec())
}

/// Answers Binding requests on `addr` until the task is dropped.
pub async fn serve(socket: tokio::net::UdpSocket) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, from) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(e) => {
                // E.g. ICMP port unreachable reported on the socket: nothing to do but go on.
                tracing::debug!(error = %e, "STUN receive error");
                continue;
            }
        };
        if let Some(reply) = answer(&buffer[..len], from) {
            if let Err(e) = socket.send_to(&reply, from).await {
                tracing::debug!(%from, error = %e, "STUN send error");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun_rs::TransactionId;

    fn binding(class: MessageClass) -> Vec<u8> {
        let msg = StunMessageBuilder::new(BINDING, class)
            .with_transaction_id(TransactionId::from([7u8; 12]))
            .build();
        let mut buffer = [0u8; 64];
        let n = MessageEncoderBuilder::default()
            .build()
            .encode(&mut buffer, &msg)
            .unwrap();
        buffer[..n].to_vec()
    }

    fn mapped(reply: &[u8]) -> SocketAddr {
        let (msg, _) = MessageDecoderBuilder::default().build().decode(reply).unwrap();
        assert_eq!(msg.class(), MessageClass::SuccessResponse);
        assert_eq!(msg.transaction_id().as_bytes(), &[7u8; 12]);
        *msg.get::<XorMappedAddress>()
            .unwrap()
            .as_xor_mapped_address()
            .unwrap()
            .socket_address()
    }

    #[test]
    fn a_binding_request_gets_the_address_it_came_from() {
        let request = binding(MessageClass::Request);
        assert_eq!(request.len(), 20);
        for from in ["198.18.0.10:40000", "[2001:db8::7]:3478"] {
            let from: SocketAddr = from.parse().unwrap();
            let reply = answer(&request, from).expect("answered");
            assert_eq!(mapped(&reply), from);
            assert!(reply.len() <= 44, "{}", reply.len());
        }
    }

    #[test]
    fn only_binding_requests_are_answered() {
        let from: SocketAddr = "198.18.0.10:40000".parse().unwrap();
        for class in [
            MessageClass::Indication,
            MessageClass::SuccessResponse,
            MessageClass::ErrorResponse,
        ] {
            assert_eq!(answer(&binding(class), from), None, "{class:?}");
        }
        assert_eq!(answer(b"GET / HTTP/1.1\r\n\r\n", from), None);
        assert_eq!(answer(&[], from), None);
        let mut no_cookie = binding(MessageClass::Request);
        no_cookie[4] ^= 0xff;
        assert_eq!(
            answer(&no_cookie, from),
            None,
            "RFC 3489 requests are not answered"
        );
    }

    #[tokio::test]
    async fn serves_over_real_udp() {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let task = tokio::spawn(serve(server));
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"garbage first", addr).await.unwrap();
        client
            .send_to(&binding(MessageClass::Request), addr)
            .await
            .unwrap();
        let mut buffer = [0u8; 128];
        let (n, _) = tokio::time::timeout(std::time::Duration::from_secs(5), client.recv_from(&mut buffer))
            .await
            .expect("an answer")
            .unwrap();
        assert_eq!(mapped(&buffer[..n]), client.local_addr().unwrap());
        task.abort();
    }
}

/// Garbage never panics and never gets an answer larger than about twice itself.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn arbitrary_datagrams(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let from: SocketAddr = "[2001:db8::7]:3478".parse().unwrap();
            if let Some(reply) = answer(&bytes, from) {
                prop_assert!(reply.len() <= 2 * bytes.len() + 4, "{} for {}", reply.len(), bytes.len());
            }
        }

        /// Valid headers with random bodies: the interesting part of the input space.
        #[test]
        fn binding_headers_with_random_attributes(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
            bytes[2..4].copy_from_slice(&(body.len() as u16).to_be_bytes());
            bytes.extend([9u8; 12]);
            bytes.extend(&body);
            let from: SocketAddr = "198.18.0.10:40000".parse().unwrap();
            if let Some(reply) = answer(&bytes, from) {
                prop_assert!(reply.len() <= 2 * bytes.len());
            }
        }
    }
}
