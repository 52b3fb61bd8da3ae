//! TLS material for QUIC: the cluster CA and this server's certificate.
//!
//! On first start, when the config names no files, `coordd` creates under `DATA/tls/`:
//! `ca.pem` + `ca.key` (the cluster CA; `ca.pem` is what clients get as `COORD_CA`) and
//! `server.pem` + `server.key` (this server, signed by the CA, SANs localhost, 127.0.0.1, ::1
//! and the configured names). Later starts reuse them. Key files are written mode 0600.

use crate::config::Config;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ALPN protocol id of Coord's client protocol.
pub const CLIENT_ALPN: &[u8] = b"coord/1";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("tls config: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Resolved paths of the PEM files in use.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The cluster CA certificate.
    pub ca_cert: PathBuf,
    /// This server's certificate chain.
    pub cert: PathBuf,
    /// This server's key.
    pub key: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = private;
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(contents.as_bytes()).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Coord cluster CA");
    dn.push(DnType::OrganizationName, "Coord");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(params)
}

/// Creates the cluster CA in `dir` unless `ca.pem` and `ca.key` exist there already.
pub fn ensure_ca(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let cert = dir.join("ca.pem");
    let key = dir.join("ca.key");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let key_pair = KeyPair::generate()?;
    let ca = ca_params()?.self_signed(&key_pair)?;
    write_file(&key, &key_pair.serialize_pem(), true)?;
    write_file(&cert, &ca.pem(), false)?;
    Ok((cert, key))
}

/// Issues a certificate for server `id` signed by the CA at (`ca_cert`, `ca_key`), for the
/// given names; writes `cert` and `key`.
pub fn issue_server_cert(
    ca_key: &Path,
    id: u64,
    names: &[String],
    cert: &Path,
    key: &Path,
) -> Result<(), TlsError> {
    let ca_key_pem = std::fs::read_to_string(ca_key).map_err(io_err(ca_key))?;
    let ca_key_pair = KeyPair::from_pem(&ca_key_pem)?;
    let issuer = Issuer::new(ca_params()?, ca_key_pair);
    let mut sans: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        format!("coord-{id}"),
    ];
    for n in names {
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = sans
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.as_str().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    let usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    sign_leaf(issuer, params, &format!("coord-{id}"), usages, cert, key)
}

/// Names `params` `CN=<common_name>` for `usages`, valid 2024–2124, signs it with a fresh
/// key by `issuer`, and writes `cert` and `key` (the key mode 0600).
fn sign_leaf(
    issuer: Issuer<'_, KeyPair>,
    mut params: CertificateParams,
    common_name: &str,
    usages: Vec<ExtendedKeyUsagePurpose>,
    cert: &Path,
    key: &Path,
) -> Result<(), TlsError> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.extended_key_usages = usages;
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let key_pair = KeyPair::generate()?;
    let signed = params.signed_by(&key_pair, &issuer)?;
    write_file(key, &key_pair.serialize_pem(), true)?;
    write_file(cert, &signed.pem(), false)?;
    Ok(())
}

/// Resolves the configured TLS files, generating a CA and a server certificate under
/// `data_dir/tls` for whatever the config leaves unset.
pub fn ensure_material(config: &Config) -> Result<TlsFiles, TlsError> {
    let dir = config.data_dir.join("tls");
    let tls = &config.tls;
    if let (Some(ca_cert), Some(cert), Some(key)) = (&tls.ca_cert, &tls.cert, &tls.key) {
        return Ok(TlsFiles {
            ca_cert: ca_cert.clone(),
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    let (ca_cert, ca_key) = match (&tls.ca_cert, &tls.ca_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => ensure_ca(&dir)?,
    };
    let cert = tls.cert.clone().unwrap_or_else(|| dir.join("server.pem"));
    let key = tls.key.clone().unwrap_or_else(|| dir.join("server.key"));
    if !(cert.exists() && key.exists()) {
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut names = tls.names.clone();
        names.push(config.client_addr.ip().to_string());
        issue_server_cert(&ca_key, config.id, &names, &cert, &key)?;
    }
    Ok(TlsFiles { ca_cert, cert, key })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(io_err(path))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err(path))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            message: "no certificate found".into(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(io_err(path))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(io_err(path))?
        .ok_or_else(|| TlsError::Pem {
            path: path.to_path_buf(),
            message: "no private key found".into(),
        })
}

/// The crypto provider every Coord endpoint uses (ring, no process-global default needed).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the quinn server configuration for the client listener; `tls` says whether client
/// certificates are asked for, and which CA they must chain to.
pub fn client_server_config(
    files: &TlsFiles,
    max_streams: u32,
    tls: &crate::config::TlsConfig,
) -> Result<quinn::ServerConfig, TlsError> {
    use crate::config::ClientAuth;
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match tls.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        mode => {
            let ca = tls.client_ca.as_ref().unwrap_or(&files.ca_cert);
            let roots = Arc::new(ca_roots(ca)?);
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = if mode == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| TlsError::Pem {
                path: ca.clone(),
                message: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut tls = builder.with_single_cert(certs, key)?;
    tls.alpn_protocols = vec![CLIENT_ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| TlsError::Pem {
            path: files.cert.clone(),
            message: e.to_string(),
        })?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(max_streams.into())
        .max_concurrent_uni_streams(0u32.into())
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
            60_000,
        ))))
        .stream_receive_window((4u32 * 1024 * 1024).into())
        .receive_window((16u32 * 1024 * 1024).into())
        .send_window(16 * 1024 * 1024);
    server.transport_config(Arc::new(transport));
    Ok(server)
}

/// The endpoint settings of every server socket: datagrams no larger than an Ethernet MTU
/// allows (QUIC's path-MTU discovery stops at 1452 bytes by default anyway), which sizes
/// quinn's receive buffers (payload × GRO segments × batch) at ~3 MiB instead of ~128 MiB of
/// address space per endpoint, most of which a busy server ends up touching.
pub fn endpoint_config() -> quinn::EndpointConfig {
    let mut config = quinn::EndpointConfig::default();
    config
        .max_udp_payload_size(1500)
        .expect("1500 is within QUIC's datagram size limits");
    config
}

/// Session streams one client connection may have open at once: a client process may run
/// many sessions over one connection (coord-client's shared `Transport`).
pub const MAX_SESSIONS_PER_CONNECTION: u32 = 1024;

/// ALPN protocol id of the peer (server-to-server) protocol.
pub const PEER_ALPN: &[u8] = b"coord-peer/1";

/// The DNS name every server certificate carries for its id (`coord-<id>`): peers verify it.
pub fn peer_name(id: u64) -> String {
    format!("coord-{id}")
}

fn ca_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// quinn configurations for the peer listener and for dialing peers: mutual TLS, where both
/// sides must present a certificate signed by the cluster CA.
pub fn peer_configs(
    files: &TlsFiles,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), TlsError> {
    let roots = Arc::new(ca_roots(&files.ca_cert)?);
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Pem {
                path: files.ca_cert.clone(),
                message: e.to_string(),
            })?;
    let mut server_tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.clone(), key.clone_key())?;
    server_tls.alpn_protocols = vec![PEER_ALPN.to_vec()];
    let mut client_tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)?;
    client_tls.alpn_protocols = vec![PEER_ALPN.to_vec()];
    let bad = |e: &dyn std::fmt::Display| TlsError::Pem {
        path: files.cert.clone(),
        message: e.to_string(),
    };
    let server_crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(server_tls).map_err(|e| bad(&e))?;
    let client_crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).map_err(|e| bad(&e))?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(4u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .keep_alive_interval(Some(std::time::Duration::from_millis(500)))
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
            10_000,
        ))))
        .stream_receive_window((16u32 * 1024 * 1024).into())
        .receive_window((32u32 * 1024 * 1024).into())
        .send_window(32 * 1024 * 1024);
    let transport = Arc::new(transport);
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server.transport_config(transport.clone());
    let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
    client.transport_config(transport);
    Ok((server, client))
}

/// The subject of the certificate a client presented (already verified against the client
/// CA by TLS), in RFC 2253 form as Java's `X500Principal.getName()` gives it (ZooKeeper's
/// x509 ids): the most specific RDN first, `CN=alice,OU=ops,O=Acme`, with `,+"\<>;` and a
/// leading `#` or space escaped. `None` when no certificate was presented.
pub fn x509_subject(identity: Option<Box<dyn std::any::Any>>) -> Option<String> {
    let chain = identity?.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let leaf = chain.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut attrs = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type();
            let name = x509_parser::objects::oid2abbrev(oid, registry)
                .map(|n| match n {
                    "emailAddress" => "EMAILADDRESS".to_string(),
                    n => n.to_string(),
                })
                .unwrap_or_else(|_| oid.to_id_string());
            let value = attr.as_str().ok()?;
            attrs.push(format!("{name}={}", rfc2253_escape(value)));
        }
        rdns.push(attrs.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

fn rfc2253_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Issues a client certificate (`CN=<name>`, client use only) signed by the CA whose key is
/// `ca_key`; writes `cert` and `key` (the key mode 0600). Its subject is the `x509` identity
/// a session gets from it: `CN=<name>`.
pub fn issue_client_cert(
    ca_key: &Path,
    name: &str,
    cert: &Path,
    key: &Path,
) -> Result<(), TlsError> {
    let ca_key_pem = std::fs::read_to_string(ca_key).map_err(io_err(ca_key))?;
    let issuer = Issuer::new(ca_params()?, KeyPair::from_pem(&ca_key_pem)?);
    let params = CertificateParams::new(Vec::<String>::new())?;
    let usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    sign_leaf(issuer, params, name, usages, cert, key)
}

/// Whether the certificate a peer presented (already verified against the CA by TLS) names
/// server `id`.
pub fn cert_names_peer(identity: Option<Box<dyn std::any::Any>>, id: u64) -> bool {
    let Some(identity) = identity else {
        return false;
    };
    let Ok(chain) = identity.downcast::<Vec<CertificateDer<'static>>>() else {
        return false;
    };
    let Some(leaf) = chain.first() else {
        return false;
    };
    let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
        return false;
    };
    let Ok(name) = rustls_pki_types::ServerName::try_from(peer_name(id)) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject_of(dn: &[(DnType, &str)]) -> Option<String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut name = DistinguishedName::new();
        for (t, v) in dn {
            name.push(t.clone(), *v);
        }
        params.distinguished_name = name;
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        x509_subject(Some(Box::new(chain)))
    }

    #[test]
    fn subjects_read_as_java_prints_them() {
        // DER order C, O, OU, CN: RFC 2253 prints the most specific first.
        assert_eq!(
            subject_of(&[
                (DnType::CountryName, "US"),
                (DnType::OrganizationName, "Acme, Inc."),
                (DnType::OrganizationalUnitName, "ops"),
                (DnType::CommonName, "alice"),
            ])
            .as_deref(),
            Some("CN=alice,OU=ops,O=Acme\\, Inc.,C=US")
        );
        assert_eq!(
            subject_of(&[(DnType::CommonName, "#x+y \"z\" <w>; ")]).as_deref(),
            Some("CN=\\#x\\+y \\\"z\\\" \\<w\\>\\;\\ ")
        );
        assert_eq!(
            subject_of(&[(DnType::CommonName, "bob")]).as_deref(),
            Some("CN=bob")
        );
        // No certificate, or not a certificate: no identity.
        assert_eq!(x509_subject(None), None);
        let junk = vec![CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])];
        assert_eq!(x509_subject(Some(Box::new(junk))), None);
        assert_eq!(x509_subject(Some(Box::new(42u32))), None);
    }
}
