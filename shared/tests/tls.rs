//! Real TLS handshakes through both HTTP clients the binaries use, on rustls with `ring` (the
//! only crypto provider linked): reqwest (Twilio, Retell, the model, Slack) and the AWS SDK's
//! client (DynamoDB, SQS, EventBridge, Secrets Manager). The peer is a different TLS stack,
//! Python's `ssl` (OpenSSL), serving HTTPS on 127.0.0.1 with a certificate for `localhost` that
//! `openssl` makes for the test. Each client trusts that certificate only when told to: the
//! same client on the system roots refuses the server, so verification is on.
#![cfg(feature = "aws")]

use aws_smithy_http_client::tls::{TlsContext, TrustStore};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The HTTPS server: every GET gets `tls ok`, every POST DynamoDB's `ListTables` answer.
const SERVER: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, body, kind):
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.reply(b"tls ok " + self.connection.version().encode(), "text/plain")
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.reply(b'{"TableNames":["tls-probe"]}', "application/x-amz-json-1.0")
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

struct Server {
    child: Child,
    port: u16,
    /// The test CA's certificate (PEM): the root a client must be told to trust.
    cert: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Best effort: the child may have exited already.
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

/// Run `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed to make the test certificates");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A fresh P-256 test CA, a server certificate for `localhost` that it signs, and the server.
fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca = [
        &["req", "-x509"],
        &ec[..],
        &["-days", "2", "-subj", "/CN=smsrelay test CA"],
    ]
    .concat();
    openssl(
        dir.path(),
        &[&ca[..], &["-keyout", "ca.key", "-out", "ca.pem"]].concat(),
    );
    let csr = [
        &["req", "-new"],
        &ec[..],
        &["-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "server.csr"],
    ]
    .concat();
    openssl(dir.path(), &csr);
    std::fs::write(
        dir.path().join("server.ext"),
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions");
    openssl(
        dir.path(),
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "cert.pem",
        ],
    );
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let mut child = Command::new("python3")
        .args(["-c", SERVER])
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 must be installed for the HTTPS server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the server prints its port");
    let port = line.trim().parse().unwrap_or_else(|_| panic!("not a port: {line:?}"));
    Server {
        child,
        port,
        cert: std::fs::read(dir.path().join("ca.pem")).expect("CA certificate"),
        _dir: dir,
    }
}

#[tokio::test]
async fn reqwest_on_ring_completes_a_handshake_with_openssl_and_verifies_the_server() {
    let server = start();
    let url = format!("https://localhost:{}/", server.port);
    let trusting = smsrelay::wiring::http_client_builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(&server.cert).expect("pem")])
        .build()
        .expect("client");
    let body = trusting
        .get(&url)
        .send()
        .await
        .expect("handshake and request")
        .text()
        .await
        .expect("body");
    assert!(body.starts_with("tls ok TLSv1."), "{body}");

    let system_roots = smsrelay::wiring::http_client().expect("client");
    let refused = system_roots.get(&url).send().await;
    assert!(
        refused.is_err(),
        "a self-signed server must be refused on the system roots"
    );
}

#[tokio::test]
async fn the_aws_sdk_client_on_ring_completes_a_handshake_with_openssl_and_verifies_the_server() {
    let server = start();
    let dynamodb = |http| {
        let conf = aws_sdk_dynamodb::config::Builder::new()
            .http_client(http)
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url(format!("https://localhost:{}", server.port))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local", "local", None, None, "tls-test",
            ))
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    };
    let trust = TrustStore::empty().with_pem_certificate(server.cert.clone());
    let tls = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("tls context");
    let listed = dynamodb(smsrelay::wiring::aws_http_client_with(tls))
        .list_tables()
        .send()
        .await
        .expect("handshake and ListTables");
    assert_eq!(listed.table_names(), ["tls-probe"]);

    let refused = dynamodb(smsrelay::wiring::aws_http_client()).list_tables().send().await;
    assert!(
        refused.is_err(),
        "a self-signed server must be refused on the system roots"
    );
}
