//! TLS for every connection (`tls => true`): rustls configurations built from options the
//! Erlang side has already checked and read (OTP `ssl` names, files decoded to DER), and the
//! peer checks webpki does not offer as such: a chain depth limit, and a server-name check that
//! `server_name_indication => disable` turns off. The authenticated handshake runs inside TLS.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    ServerName, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// A private key in the encoding its PEM entry had.
#[derive(Clone)]
pub enum KeyDer {
    /// `RSAPrivateKey` (PKCS #1).
    Pkcs1(Vec<u8>),
    /// `ECPrivateKey` (SEC 1).
    Sec1(Vec<u8>),
    /// `PrivateKeyInfo` (PKCS #8).
    Pkcs8(Vec<u8>),
}

/// What the dialer checks the acceptor's certificate names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerNameCheck {
    /// The address dialed (OTP's default: the host given to `ssl:connect`).
    Dialed,
    /// This name (`server_name_indication => "host"`), also sent as SNI.
    Name(String),
    /// Any name (`server_name_indication => disable`): the chain is still checked.
    Disabled,
}

/// A TLS protocol version (`versions`); rustls has no older ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    /// `'tlsv1.2'`
    V12,
    /// `'tlsv1.3'`
    V13,
}

/// One side's options (`tls_client_options` or `tls_server_options`).
#[derive(Clone)]
pub struct TlsSide {
    /// Own certificate chain, leaf first (`certfile` or `cert`).
    pub certs: Vec<Vec<u8>>,
    /// Own key (`keyfile` or `key`, decrypted with `password` on the Erlang side).
    pub key: Option<KeyDer>,
    /// Trusted CAs (`cacertfile` or `cacerts`).
    pub cacerts: Vec<Vec<u8>>,
    /// `verify => verify_peer`; without it any certificate is taken (unsafe, as in OTP).
    pub verify_peer: bool,
    /// Server side: a client without a certificate is refused (`fail_if_no_peer_cert`).
    pub fail_if_no_peer_cert: bool,
    /// Client side: `server_name_indication`.
    pub server_name: ServerNameCheck,
    /// Allowed versions; empty means both.
    pub versions: Vec<TlsVersion>,
    /// Most intermediate CAs between a peer certificate and a trusted one (`depth`).
    pub depth: usize,
}

impl Default for TlsSide {
    fn default() -> Self {
        TlsSide {
            certs: Vec::new(),
            key: None,
            cacerts: Vec::new(),
            verify_peer: true,
            fail_if_no_peer_cert: true,
            server_name: ServerNameCheck::Dialed,
            versions: Vec::new(),
            // OTP's default.
            depth: 10,
        }
    }
}

/// The connectors of a node with TLS on.
pub struct Tls {
    connector: TlsConnector,
    acceptor: TlsAcceptor,
    server_name: ServerNameCheck,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Builds both configurations; an option rustls cannot use (a bad certificate or key, a
    /// server side without a certificate) is an error naming it.
    pub fn new(client: &TlsSide, server: &TlsSide) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(client_config(client, &provider)?)),
            acceptor: TlsAcceptor::from(Arc::new(server_config(server, &provider)?)),
            server_name: client.server_name.clone(),
        })
    }

    /// The dialer's TLS handshake on a connected socket.
    pub(crate) async fn connect(
        &self,
        addr: SocketAddr,
        stream: TcpStream,
    ) -> io::Result<TlsStream<TcpStream>> {
        let name = match &self.server_name {
            ServerNameCheck::Dialed => ServerName::IpAddress(addr.ip().into()),
            ServerNameCheck::Name(n) => ServerName::try_from(n.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            // Unused by the verifier, and not sent (SNI is off).
            ServerNameCheck::Disabled => ServerName::try_from("partisan").expect("a valid name"),
        };
        Ok(TlsStream::Client(
            self.connector.connect(name, stream).await?,
        ))
    }

    /// The acceptor's TLS handshake on an accepted socket.
    pub(crate) async fn accept(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        Ok(TlsStream::Server(self.acceptor.accept(stream).await?))
    }
}

fn versions(wanted: &[TlsVersion]) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let all = [
        (TlsVersion::V13, &rustls::version::TLS13),
        (TlsVersion::V12, &rustls::version::TLS12),
    ];
    all.into_iter()
        .filter(|(v, _)| wanted.is_empty() || wanted.contains(v))
        .map(|(_, p)| p)
        .collect()
}

fn chain(certs: &[Vec<u8>]) -> Vec<CertificateDer<'static>> {
    certs
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect()
}

fn key(key: &KeyDer) -> PrivateKeyDer<'static> {
    match key {
        KeyDer::Pkcs1(k) => PrivatePkcs1KeyDer::from(k.clone()).into(),
        KeyDer::Sec1(k) => PrivateSec1KeyDer::from(k.clone()).into(),
        KeyDer::Pkcs8(k) => PrivatePkcs8KeyDer::from(k.clone()).into(),
    }
}

fn roots(side: &TlsSide, which: &str) -> Result<Arc<RootCertStore>, String> {
    if side.cacerts.is_empty() {
        return Err(format!("{which}: verify_peer needs cacertfile or cacerts"));
    }
    let mut store = RootCertStore::empty();
    for ca in chain(&side.cacerts) {
        store
            .add(ca)
            .map_err(|e| format!("{which}: a CA certificate: {e}"))?;
    }
    Ok(Arc::new(store))
}

fn client_config(side: &TlsSide, provider: &Arc<CryptoProvider>) -> Result<ClientConfig, String> {
    let verifier: Arc<dyn ServerCertVerifier> = Arc::new(ServerCheck {
        webpki: match side.verify_peer {
            true => Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots(side, "tls_client_options")?,
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("tls_client_options: {e}"))?,
            ),
            false => None,
        },
        check_name: side.server_name != ServerNameCheck::Disabled,
        depth: Depth::new(side),
        provider: provider.clone(),
    });
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(&side.versions))
        .map_err(|e| format!("tls_client_options: versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &side.key {
        Some(k) if !side.certs.is_empty() => builder
            .with_client_auth_cert(chain(&side.certs), key(k))
            .map_err(|e| format!("tls_client_options: certificate or key: {e}"))?,
        _ => builder.with_no_client_auth(),
    };
    config.enable_sni = matches!(side.server_name, ServerNameCheck::Name(_));
    Ok(config)
}

fn server_config(side: &TlsSide, provider: &Arc<CryptoProvider>) -> Result<ServerConfig, String> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(&side.versions))
        .map_err(|e| format!("tls_server_options: versions: {e}"))?;
    let builder = if side.verify_peer {
        let mut webpki = WebPkiClientVerifier::builder_with_provider(
            roots(side, "tls_server_options")?,
            provider.clone(),
        );
        if !side.fail_if_no_peer_cert {
            webpki = webpki.allow_unauthenticated();
        }
        let webpki = webpki
            .build()
            .map_err(|e| format!("tls_server_options: {e}"))?;
        builder.with_client_cert_verifier(Arc::new(ClientCheck {
            webpki,
            depth: Depth::new(side),
        }))
    } else {
        builder.with_no_client_auth()
    };
    let Some(k) = side.key.as_ref().filter(|_| !side.certs.is_empty()) else {
        return Err(
            "tls_server_options: a certificate and key are needed (certfile, keyfile)".into(),
        );
    };
    builder
        .with_single_cert(chain(&side.certs), key(k))
        .map_err(|e| format!("tls_server_options: certificate or key: {e}"))
}

/// OTP's `depth`: how many intermediate CAs a peer may present, not counting trusted ones
/// (a peer may send its root along).
#[derive(Debug)]
struct Depth {
    max: usize,
    trusted: Vec<Vec<u8>>,
}

impl Depth {
    fn new(side: &TlsSide) -> Depth {
        Depth {
            max: side.depth,
            trusted: side.cacerts.clone(),
        }
    }

    fn check(&self, intermediates: &[CertificateDer<'_>]) -> Result<(), rustls::Error> {
        let untrusted = intermediates
            .iter()
            .filter(|c| !self.trusted.iter().any(|t| t[..] == c[..]))
            .count();
        match untrusted <= self.max {
            true => Ok(()),
            false => Err(rustls::Error::General(format!(
                "certificate chain has {untrusted} intermediates, depth allows {}",
                self.max
            ))),
        }
    }
}

/// The dialer's check of the acceptor: webpki's chain and validity check (unless
/// `verify_none`), the name only when asked, the depth always.
#[derive(Debug)]
struct ServerCheck {
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    check_name: bool,
    depth: Depth,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        self.depth.check(intermediates)?;
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The acceptor's check of the dialer: webpki's, plus the depth.
#[derive(Debug)]
struct ClientCheck {
    webpki: Arc<dyn ClientCertVerifier>,
    depth: Depth,
}

impl ClientCertVerifier for ClientCheck {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.depth.check(intermediates)?;
        self.webpki
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
