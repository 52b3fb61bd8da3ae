//! TLS and QUIC setup: trust only the cluster CA, ALPN `coord/1`, TLS 1.3 with ring, and a
//! client UDP socket with a large receive buffer.

use crate::error::Error;
use coord_proto::ErrorCode;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

/// The ALPN protocol of the client protocol.
pub const ALPN: &[u8] = b"coord/1";

/// Receive buffer requested for the client socket: bursts of replies to pipelined requests
/// must not be dropped by the kernel.
const RECV_BUFFER: usize = 4 * 1024 * 1024;

/// Parses the CA certificate(s) from PEM, refusing input with none.
pub(crate) fn parse_ca(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let mut reader = pem;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut reader)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            Error::with_message(
                ErrorCode::BadArguments,
                format!("CA file is not valid PEM: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(Error::with_message(
            ErrorCode::BadArguments,
            "CA file holds no certificate",
        ));
    }
    Ok(certs)
}

/// Parses a client certificate chain and its private key from PEM, refusing input without
/// one or the other.
pub(crate) fn parse_identity(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let bad = |m: String| Error::with_message(ErrorCode::BadArguments, m);
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("client certificate is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("client certificate file holds no certificate".into()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| bad(format!("client key is not valid PEM: {e}")))?
        .ok_or_else(|| bad("client key file holds no private key".into()))?;
    Ok((certs, key))
}

/// The quinn client configuration: TLS 1.3 (ring), roots = the cluster CA only, ALPN
/// `coord/1`, the client certificate if one is given (PEM chain, PEM key), and
/// `idle_timeout` as QUIC's idle timeout.
pub(crate) fn quic_client_config(
    ca_pem: &[u8],
    client_cert: Option<&(Vec<u8>, Vec<u8>)>,
    idle_timeout: Duration,
) -> Result<quinn::ClientConfig, Error> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        Error::with_message(ErrorCode::BadArguments, format!("{what}: {e}"))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in parse_ca(ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| bad("CA certificate refused", &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| bad("TLS setup", &e))?
        .with_root_certificates(roots);
    let mut tls = match client_cert {
        Some((cert, key)) => {
            let (certs, key) = parse_identity(cert, key)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| bad("client certificate refused", &e))?
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| bad("QUIC TLS setup", &e))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    // The server never opens streams towards a client.
    transport.max_concurrent_bidi_streams(0u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    let idle = quinn::IdleTimeout::try_from(idle_timeout).map_err(|e| bad("idle timeout", &e))?;
    transport.max_idle_timeout(Some(idle));
    // QUIC-level keep-alives (no application work on the server) every 250 ms: with the idle
    // timeout, a dead or paused server is noticed in about a second instead of 2/3 of the
    // session timeout, and the client moves to another server well within its session.
    transport.keep_alive_interval(Some(Duration::from_millis(250)));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// The name a server certificate must carry for `host`: an IP literal is checked against the
/// certificate's IP SANs, anything else against its DNS SANs.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(host.to_string()).map_err(|e| {
        Error::with_message(
            ErrorCode::BadArguments,
            format!("bad server name {host:?}: {e}"),
        )
    })
}

/// A client endpoint bound to the wildcard address of `addr`'s family through a socket with
/// a 4 MiB receive buffer (best effort: the kernel may cap it).
pub(crate) fn bind_endpoint(for_addr: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (domain, local): (Domain, SocketAddr) = match for_addr {
        SocketAddr::V4(_) => (Domain::IPV4, (Ipv4Addr::UNSPECIFIED, 0).into()),
        SocketAddr::V6(_) => (Domain::IPV6, (Ipv6Addr::UNSPECIFIED, 0).into()),
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER) {
        tracing::debug!("cannot raise SO_RCVBUF to {RECV_BUFFER}: {e}");
    }
    socket.bind(&local.into())?;
    let socket: UdpSocket = socket.into();
    // Datagrams no larger than an Ethernet MTU (path-MTU discovery stops at 1452 bytes by
    // default): this sizes quinn's receive buffers at ~3 MiB instead of ~128 MiB.
    let mut config = quinn::EndpointConfig::default();
    config
        .max_udp_payload_size(1500)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    quinn::Endpoint::new(config, None, socket, Arc::new(quinn::TokioRuntime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_become_ip_names() {
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("::1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("localhost").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(server_name("bad name!").is_err());
    }
}
