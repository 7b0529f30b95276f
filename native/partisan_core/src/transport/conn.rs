//! Connection tasks: accepting, dialing, the handshake, and the reader and writer of an
//! established connection.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsStream;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::close::CloseReason;
use super::coalesce::coalesce;
use super::driver::{DialRequest, Driver};
use super::pacer::Pacer;
use super::peer::Conn;
use super::send_queue::Batch;
use super::stats::Stats;
use super::{Delivery, FrameBuf, LARGE_FRAME_BODY};
use crate::control::{Liveness, Verdict};
use crate::membership::State;
use crate::wire::{
    self as auth, encode_frame, read_preamble, AuthChallenge, AuthInit, AuthResponse, Frame,
    FrameDecoder, FrameKind, Hello, HelloAck, Preamble, Reader, Side, Target, WireError,
    FRAME_HEADER_LEN, MAX_HANDSHAKE_FRAME, PREAMBLE_LEN,
};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest authentication frame: its kind and two nonces' worth of bytes, with room to spare.
const MAX_AUTH_FRAME: usize = 128;
/// Most of its gathering buffer (which makes many small frames one syscall) a writer keeps
/// while its connection is idle, for memory per idle connection; a burst grows it as needed.
const IDLE_WRITE_BUFFER: usize = 16 * 1024;
/// Most buffers passed to one vectored write (Linux allows 1024).
const MAX_IOVECS: usize = 512;
const READ_CHUNK: usize = 64 * 1024;
/// The read buffer of a connection whose last read did not fill its buffer (an idle or
/// latency-bound connection): memory per idle connection stays small, and the first read
/// that fills it brings back `READ_CHUNK`.
const IDLE_READ: usize = 8 * 1024;
/// Most queued frames the writer takes at once, so that it accounts for progress regularly.
const BATCH_FRAMES: usize = 4096;
fn invalid(e: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// A connection's byte stream: plain TCP, or TLS over it (`tls`).
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// What the handshake needs of a stream; it runs the same inside TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Stream {
    fn io(&mut self) -> &mut dyn Io {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.as_mut(),
        }
    }
}

/// With TLS on, runs its handshake first: the authenticated handshake then runs inside it.
async fn secure(driver: &Driver, tcp: TcpStream, dialed: Option<SocketAddr>) -> io::Result<Stream> {
    let Some(tls) = &driver.config().tls else {
        return Ok(Stream::Plain(tcp));
    };
    let addr = tcp.peer_addr().ok();
    let secured = match dialed {
        Some(to) => tls.connect(to, tcp).await,
        None => tls.accept(tcp).await,
    };
    match secured {
        Ok(s) => Ok(Stream::Tls(Box::new(s))),
        Err(e) => {
            Stats::incr(&driver.stats().tls_failures);
            driver.tls_failed(addr, dialed.is_some(), e.to_string());
            Err(e)
        }
    }
}

pub(crate) async fn accept_loop(driver: Arc<Driver>, listener: TcpListener) {
    let mut shutdown = driver.shutdown_signal();
    // Connections still in their handshake hold a permit: beyond the limit, new ones are
    // closed at once, so a flood of half-open handshakes costs a bounded amount of memory.
    let permits = Arc::new(Semaphore::new(driver.config().handshake_limit.max(1)));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(inbound(driver.clone(), stream, permit));
                    }
                    Err(_) => {
                        Stats::incr(&driver.stats().handshakes_over_limit);
                        drop(stream);
                    }
                },
                // Out of descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Carries out the dials the control core asks for, each in a task of its own.
pub(crate) async fn dial_loop(
    driver: Arc<Driver>,
    mut requests: mpsc::UnboundedReceiver<DialRequest>,
) {
    let mut shutdown = driver.shutdown_signal();
    loop {
        tokio::select! {
            request = requests.recv() => match request {
                Some(r) => {
                    tokio::spawn(dial(driver.clone(), r));
                }
                None => return,
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn inbound(driver: Arc<Driver>, tcp: TcpStream, permit: OwnedSemaphorePermit) {
    let _ = tcp.set_nodelay(true);
    let addr = tcp.peer_addr().ok();
    let handshake = async {
        let mut stream = secure(&driver, tcp, None).await?;
        let accepted = accept_handshake(&driver, stream.io(), addr).await?;
        Ok::<_, io::Error>(accepted.map(|(conn, buf)| (conn, stream, buf)))
    };
    let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await;
    drop(permit);
    match outcome {
        Ok(Ok(Some((conn, stream, buf)))) => run(driver, conn, stream, buf).await,
        Ok(Ok(None)) => {}
        Ok(Err(_)) | Err(_) => Stats::incr(&driver.stats().handshake_failures),
    }
}

/// The acceptor's half of the handshake. `Ok(None)` means the dialer was politely refused.
async fn accept_handshake(
    driver: &Arc<Driver>,
    stream: &mut dyn Io,
    addr: Option<SocketAddr>,
) -> io::Result<Option<(Arc<Conn>, BytesMut)>> {
    let mut pre = [0u8; PREAMBLE_LEN];
    stream.read_exact(&mut pre).await?;
    // Answer with our preamble even on a version mismatch, so the dialer can tell why.
    stream.write_all(&Preamble::ours()).await?;
    read_preamble(&pre).map_err(invalid)?;
    let mut buf = BytesMut::with_capacity(256);
    // Nothing but the authentication frames is read before the dialer proved the secret.
    let init = expect(stream, &mut buf, FrameKind::AuthInit).await?;
    let init = AuthInit::decode(&init.body).map_err(invalid)?;
    let secret = &driver.config().secret;
    let mine = auth::nonce();
    let challenge = AuthChallenge {
        nonce: mine,
        proof: auth::prove(secret, Side::Acceptor, &init.nonce, &mine),
    };
    stream
        .write_all(&encode_frame(FrameKind::AuthChallenge, &challenge.encode()))
        .await?;
    let response = expect(stream, &mut buf, FrameKind::AuthResponse).await?;
    let response = AuthResponse::decode(&response.body).map_err(invalid)?;
    if !auth::verify(secret, Side::Dialer, &mine, &init.nonce, &response.proof) {
        Stats::incr(&driver.stats().auth_failures);
        driver.auth_failed(addr, false);
        return Ok(None);
    }
    let frame = read_frame(stream, &mut buf, MAX_HANDSHAKE_FRAME).await?;
    if frame.kind != FrameKind::Hello {
        return Err(invalid(WireError::Invalid("expected hello")));
    }
    let hello = Hello::decode(&frame.body).map_err(invalid)?;
    let (ack, accepted) = driver.admit(&hello);
    if let Err(e) = stream
        .write_all(&encode_frame(FrameKind::HelloAck, &ack.encode()))
        .await
    {
        if let Some(conn) = &accepted {
            conn.close(CloseReason::Io);
            driver.closed(conn, CloseReason::Io);
        }
        return Err(e);
    }
    Ok(accepted.map(|c| (c, buf)))
}

/// Fills one slot as the control core asked; reports a failure to it.
async fn dial(driver: Arc<Driver>, request: DialRequest) {
    let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, dial_handshake(&driver, &request)).await;
    match outcome {
        Ok(Ok(Some((conn, stream, buf)))) => run(driver, conn, stream, buf).await,
        // Refused, or the other side holds the connection the tie-break prefers: the core
        // already knows from the ack.
        Ok(Ok(None)) => {}
        Ok(Err(_)) | Err(_) => driver.dial_failed(request.slot),
    }
}

type Dialed = Option<(Arc<Conn>, Stream, BytesMut)>;

async fn dial_handshake(driver: &Arc<Driver>, request: &DialRequest) -> io::Result<Dialed> {
    let mut last_err = io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "node spec has no listen address",
    );
    let mut tcp = None;
    for addr in &request.addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some((s, *addr));
                break;
            }
            Err(e) => last_err = e,
        }
    }
    let (tcp, addr) = tcp.ok_or(last_err)?;
    tcp.set_nodelay(true)?;
    let mut secured = secure(driver, tcp, Some(addr)).await?;
    let stream = secured.io();
    let mine = auth::nonce();
    let mut out = Preamble::ours().to_vec();
    out.extend_from_slice(&encode_frame(
        FrameKind::AuthInit,
        &AuthInit { nonce: mine }.encode(),
    ));
    stream.write_all(&out).await?;
    let mut pre = [0u8; PREAMBLE_LEN];
    stream.read_exact(&mut pre).await?;
    read_preamble(&pre).map_err(invalid)?;
    let mut buf = BytesMut::with_capacity(1024);
    let challenge = expect(stream, &mut buf, FrameKind::AuthChallenge).await?;
    let challenge = AuthChallenge::decode(&challenge.body).map_err(invalid)?;
    let secret = &driver.config().secret;
    if !auth::verify(
        secret,
        Side::Acceptor,
        &mine,
        &challenge.nonce,
        &challenge.proof,
    ) {
        // The node at that address does not know our secret: say nothing more to it.
        Stats::incr(&driver.stats().auth_failures);
        driver.auth_failed(Some(addr), true);
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the secrets differ",
        ));
    }
    let response = AuthResponse {
        proof: auth::prove(secret, Side::Dialer, &challenge.nonce, &mine),
    };
    let mut out = encode_frame(FrameKind::AuthResponse, &response.encode()).to_vec();
    out.extend_from_slice(&encode_frame(FrameKind::Hello, &request.hello.encode()));
    stream.write_all(&out).await?;
    let frame = read_frame(stream, &mut buf, MAX_HANDSHAKE_FRAME).await?;
    if frame.kind != FrameKind::HelloAck {
        return Err(invalid(WireError::Invalid("expected hello ack")));
    }
    let ack = HelloAck::decode(&frame.body).map_err(invalid)?;
    Ok(driver
        .dialed(&request.slot, &ack)
        .map(|c| (c, secured, buf)))
}

/// Reads one small authentication frame of `kind`; anything else ends the handshake.
async fn expect(stream: &mut dyn Io, buf: &mut BytesMut, kind: FrameKind) -> io::Result<Frame> {
    let frame = read_frame(stream, buf, MAX_AUTH_FRAME).await?;
    if frame.kind != kind {
        return Err(invalid(WireError::Invalid(
            "unexpected frame while authenticating",
        )));
    }
    Ok(frame)
}

async fn read_frame(stream: &mut dyn Io, buf: &mut BytesMut, max: usize) -> io::Result<Frame> {
    let decoder = FrameDecoder::new(max);
    loop {
        if let Some(frame) = decoder.decode(buf).map_err(invalid)? {
            return Ok(frame);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Runs an installed connection until either side closes it, then tells the control core.
async fn run(driver: Arc<Driver>, conn: Arc<Conn>, stream: Stream, buf: BytesMut) {
    Stats::incr(&driver.stats().connections_opened);
    let why = match stream {
        Stream::Plain(tcp) => {
            let (rd, wr) = tcp.into_split();
            let socket = Arc::new(wr);
            // Senders may write straight to a plain socket; a TLS session has one writer.
            conn.queue.attach(socket.clone());
            tokio::spawn(write_loop(driver.clone(), conn.clone(), socket));
            read_loop(&driver, &conn, rd, buf).await
        }
        Stream::Tls(tls) => {
            let (rd, wr) = tokio::io::split(*tls);
            tokio::spawn(tls_write_loop(driver.clone(), conn.clone(), wr));
            read_loop(&driver, &conn, rd, buf).await
        }
    };
    conn.close(why);
    driver.closed(&conn, conn.closed.get().unwrap_or(why));
    Stats::incr(&driver.stats().connections_closed);
}

/// Drains the queue in batches: small frames are gathered into one buffer, so a burst of them
/// costs few syscalls; large ones are written as they are.
async fn write_loop(driver: Arc<Driver>, conn: Arc<Conn>, socket: Arc<OwnedWriteHalf>) {
    let low_water = driver.config().send_queue_limit / 2;
    let mut out = Vec::new();
    let mut pacer = Pacer::new(driver.interactive(), conn.id);
    let q = &conn.queue;
    loop {
        if let Some(batch) = q.claim_batch(BATCH_FRAMES) {
            let result = write_batch(&socket, &batch, &mut out, &mut pacer).await;
            q.finish_batch(batch.len(), low_water);
            if result.is_err() {
                conn.close(CloseReason::Io);
                return;
            }
            continue;
        }
        if q.finished() {
            break;
        }
        if out.capacity() > IDLE_WRITE_BUFFER {
            out = Vec::new();
        }
        q.idle().await;
    }
    let _ = socket2::SockRef::from(socket.as_ref().as_ref()).shutdown(std::net::Shutdown::Write);
}

/// The writer of a TLS connection: batches are gathered as for a plain one, so small frames
/// share TLS records, then flushed.
async fn tls_write_loop(driver: Arc<Driver>, conn: Arc<Conn>, mut wr: impl AsyncWrite + Unpin) {
    let low_water = driver.config().send_queue_limit / 2;
    let mut out = Vec::new();
    let q = &conn.queue;
    loop {
        if let Some(batch) = q.claim_batch(BATCH_FRAMES) {
            let result = write_tls_batch(&mut wr, &batch, &mut out).await;
            q.finish_batch(batch.len(), low_water);
            if result.is_err() {
                conn.close(CloseReason::Io);
                return;
            }
            continue;
        }
        if q.finished() {
            break;
        }
        if out.capacity() > IDLE_WRITE_BUFFER {
            out = Vec::new();
        }
        q.idle().await;
    }
    // close_notify, then the socket's write side.
    let _ = wr.shutdown().await;
}

async fn write_tls_batch(
    wr: &mut (impl AsyncWrite + Unpin),
    batch: &Batch,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut pieces: Vec<&[u8]> = Vec::with_capacity(batch.frames.len() + 1);
    for frame in batch.front.iter().chain(&batch.frames) {
        pieces.extend(frame.pieces());
    }
    for buf in coalesce(&pieces, out) {
        wr.write_all(buf).await?;
    }
    wr.flush().await
}

/// Writes a batch with as few syscalls as possible and without copying large parts (see
/// `coalesce`).
async fn write_batch(
    socket: &OwnedWriteHalf,
    batch: &Batch,
    out: &mut Vec<u8>,
    pacer: &mut Pacer<'_>,
) -> io::Result<()> {
    let mut pieces: Vec<&[u8]> = Vec::with_capacity(batch.frames.len() + 1);
    for frame in batch.front.iter().chain(&batch.frames) {
        pieces.extend(frame.pieces());
    }
    let bufs = coalesce(&pieces, out);
    write_all_vectored(socket, &bufs, pacer).await
}

/// Writes `parts` in order, paced. One syscall takes at most `MAX_IOVECS` buffers and
/// `pacer.syscall_max()` bytes.
async fn write_all_vectored(
    socket: &OwnedWriteHalf,
    parts: &[&[u8]],
    pacer: &mut Pacer<'_>,
) -> io::Result<()> {
    // The next byte to write is parts[i][off..].
    let (mut i, mut off) = (0, 0);
    let mut iov = Vec::with_capacity(parts.len().min(MAX_IOVECS));
    while i < parts.len() {
        pacer.pace().await;
        iov.clear();
        let mut room = pacer.syscall_max();
        for (k, part) in parts[i..].iter().enumerate().take(MAX_IOVECS) {
            let rest = if k == 0 { &part[off..] } else { part };
            let n = rest.len().min(room);
            iov.push(IoSlice::new(&rest[..n]));
            room -= n;
            if room == 0 {
                break;
            }
        }
        match socket.try_write_vectored(&iov) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                while n > 0 {
                    let left = parts[i].len() - off;
                    if n < left {
                        off += n;
                        break;
                    }
                    n -= left;
                    i += 1;
                    off = 0;
                }
                while i < parts.len() && parts[i].len() == off {
                    i += 1;
                    off = 0;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                pacer.rested();
                socket.writable().await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A large data frame being read straight into memory lent by the handler.
struct Pending {
    buf: Box<dyn FrameBuf>,
    filled: usize,
}

impl Pending {
    fn is_full(&self) -> bool {
        self.filled == self.buf.as_slice().len()
    }
}

/// Reads and handles frames until the connection ends; returns why it did (a reason set by
/// whoever closed the connection first takes precedence, see `Conn::close`).
async fn read_loop(
    driver: &Arc<Driver>,
    conn: &Arc<Conn>,
    mut rd: impl AsyncRead + Unpin,
    mut buf: BytesMut,
) -> CloseReason {
    let decoder = FrameDecoder::new(driver.config().max_frame_size);
    let mut stop = conn.stop_reader.subscribe();
    if *stop.borrow() {
        return CloseReason::PeerClosed;
    }
    // Made once: a future made per read would register with the runtime each time.
    let mut stopped = std::pin::pin!(stop.changed());
    let mut liveness = Liveness::new(driver.config().ping.clone(), Instant::now());
    // The liveness alarm is set only when the deadline comes nearer, never moved later on
    // every read: when it rings early, Liveness says so and it is set again.
    let mut alarm = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    let mut alarm_at: Option<Instant> = None;
    let mut pending: Option<Pending> = None;
    // Whether the last read filled the buffer it was given.
    let mut streaming = false;
    let mut pacer = Pacer::new(driver.interactive(), conn.id);
    loop {
        pacer.pace().await;
        while pending.is_none() {
            let next = match take_large(driver, &decoder, &mut buf) {
                Ok(Some(p)) if p.is_full() => deliver_large(driver, conn, p),
                Ok(Some(p)) => {
                    pending = Some(p);
                    break;
                }
                Ok(None) => match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => handle_frame(driver, conn, frame),
                    Ok(None) => break,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if next.is_err() {
                Stats::incr(&driver.stats().protocol_errors);
                return CloseReason::ProtocolError;
            }
        }
        // Room for the rest of the current frame, so a large one arrives in few reads. Inside a
        // large frame, read only up to its end: bytes of the next frame behind it would have to
        // be moved to the front of the buffer once the frame is handed off.
        let mut read_limit = 0;
        if pending.is_none() {
            let chunk = if streaming { READ_CHUNK } else { IDLE_READ };
            if !streaming && buf.is_empty() && buf.capacity() > IDLE_READ {
                buf = BytesMut::with_capacity(IDLE_READ);
            }
            let wanted = decoder.wanted(&buf);
            buf.reserve(wanted.clamp(chunk, driver.config().max_frame_size + 5));
            read_limit = if wanted > chunk {
                wanted
            } else {
                buf.capacity() - buf.len()
            };
        }
        if let Some(due) = liveness.deadline() {
            if alarm_at.is_none_or(|at| due < at) {
                alarm.as_mut().reset(due.into());
                alarm_at = Some(due);
            }
        }
        let syscall_max = pacer.syscall_max();
        tokio::select! {
            read = read_some(&mut rd, &mut buf, pending.as_mut(), read_limit, syscall_max) => match read {
                Ok(0) => return CloseReason::PeerClosed,
                Err(e) => return read_failure(&e),
                Ok(n) => {
                    streaming = pending.is_none() && n == read_limit;
                    driver.stats().bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                    if n < READ_CHUNK {
                        pacer.rested();
                    }
                    liveness.received(Instant::now());
                    if let Some(p) = pending.as_mut() {
                        p.filled += n;
                    }
                    if pending.as_ref().is_some_and(Pending::is_full) {
                        let done = pending.take().map(|p| deliver_large(driver, conn, p));
                        if let Some(Err(_)) = done {
                            Stats::incr(&driver.stats().protocol_errors);
                            return CloseReason::ProtocolError;
                        }
                    }
                }
            },
            _ = &mut alarm, if alarm_at.is_some() => {
                alarm_at = None;
                match liveness.timeout(Instant::now()) {
                    Some(Verdict::Ping(nonce)) => {
                        conn.enqueue(encode_frame(FrameKind::Ping, &nonce.to_be_bytes()));
                    }
                    Some(Verdict::Dead) => {
                        Stats::incr(&driver.stats().ping_timeouts);
                        return CloseReason::PingTimeout;
                    }
                    None => {}
                }
            }
            // The closer named the reason.
            _ = &mut stopped => return CloseReason::PeerClosed,
        }
    }
}

/// A reset or abort is how a peer that closed with unread data goes away: the same as an end
/// of stream, not a local I/O fault.
fn read_failure(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            CloseReason::PeerClosed
        }
        _ => CloseReason::Io,
    }
}

/// Reads into the pending large frame if there is one (at most `max` bytes), else into the read
/// buffer (at most `limit` bytes).
async fn read_some(
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    pending: Option<&mut Pending>,
    limit: usize,
    max: usize,
) -> io::Result<usize> {
    match pending {
        Some(p) => {
            let end = p.filled.saturating_add(max).min(p.buf.as_slice().len());
            rd.read(&mut p.buf.as_mut_slice()[p.filled..end]).await
        }
        None => (&mut *rd).take(limit as u64).read_buf(buf).await,
    }
}

/// If the next frame is a large data frame and the handler lends memory for its body, starts
/// reading it there, moving what `buf` already holds of it.
fn take_large(
    driver: &Driver,
    decoder: &FrameDecoder,
    buf: &mut BytesMut,
) -> Result<Option<Pending>, WireError> {
    let Some((FrameKind::Data, len)) = decoder.peek(buf)? else {
        return Ok(None);
    };
    if len < LARGE_FRAME_BODY {
        return Ok(None);
    }
    let Some(mut lent) = driver.handler().frame_buf(len) else {
        return Ok(None);
    };
    if lent.as_slice().len() != len {
        return Ok(None);
    }
    buf.advance(FRAME_HEADER_LEN);
    let have = buf.len().min(len);
    lent.as_mut_slice()[..have].copy_from_slice(&buf[..have]);
    buf.advance(have);
    Ok(Some(Pending {
        buf: lent,
        filled: have,
    }))
}

fn deliver_large(driver: &Driver, conn: &Conn, frame: Pending) -> Result<(), WireError> {
    let body = frame.buf.as_slice();
    let mut r = Reader::new(body);
    let target = Target::decode(&mut r)?;
    let payload_at = body.len() - r.remaining();
    Stats::incr(&driver.stats().received);
    if is_stale(driver, &target) {
        Stats::incr(&driver.stats().dropped_stale_pid);
        return Ok(());
    }
    count(
        driver,
        driver
            .handler()
            .deliver_buf(&conn.origin, &target, frame.buf, payload_at),
    );
    Ok(())
}

/// A pid of an earlier life of this node: its process is gone, whatever has its number now.
fn is_stale(driver: &Driver, target: &Target) -> bool {
    matches!(target, Target::Pid { creation: Some(c), .. } if *c != driver.config().pids.creation)
}

fn count(driver: &Driver, delivery: Delivery) {
    match delivery {
        Delivery::Delivered => {}
        Delivery::NoDestination => Stats::incr(&driver.stats().dropped_unknown_dest),
        Delivery::Undecodable => Stats::incr(&driver.stats().dropped_decode),
        Delivery::RefusedAtoms => Stats::incr(&driver.stats().dropped_atoms),
    }
}

fn handle_frame(driver: &Arc<Driver>, conn: &Conn, frame: Frame) -> Result<(), WireError> {
    match frame.kind {
        FrameKind::Data => {
            let mut r = Reader::new(&frame.body);
            let target = Target::decode(&mut r)?;
            let payload = frame.body.slice(frame.body.len() - r.remaining()..);
            Stats::incr(&driver.stats().received);
            if frame.body.len() < LARGE_FRAME_BODY {
                driver.interactive().note(conn.id);
            }
            if is_stale(driver, &target) {
                Stats::incr(&driver.stats().dropped_stale_pid);
                return Ok(());
            }
            count(
                driver,
                driver.handler().deliver(&conn.origin, &target, payload),
            );
        }
        FrameKind::Ping => {
            conn.enqueue(encode_frame(FrameKind::Pong, &frame.body));
        }
        FrameKind::Pong => {}
        FrameKind::Gossip => driver.gossip(conn, State::decode(&frame.body)?),
        FrameKind::Overlay => driver.overlay(conn, frame.body),
        FrameKind::Broadcast => driver.broadcast_received(conn, &frame.body)?,
        FrameKind::Hello
        | FrameKind::HelloAck
        | FrameKind::AuthInit
        | FrameKind::AuthChallenge
        | FrameKind::AuthResponse => {
            return Err(WireError::Invalid("handshake frame after handshake"))
        }
    }
    Ok(())
}
