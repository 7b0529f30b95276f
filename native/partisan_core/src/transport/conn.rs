//! Connection tasks: accepting, dialing, the handshake, and the reader and writer of an
//! established connection.

use std::io::{self, IoSlice};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use super::close::CloseReason;
use super::cluster;
use super::coalesce::coalesce;
use super::engine::Inner;
use super::pacer::Pacer;
use super::peer::{Conn, Peer};
use super::send_queue::Batch;
use super::stats::Stats;
use super::{Delivery, FrameBuf, Origin, LARGE_FRAME_BODY};
use crate::membership::State;
use crate::wire::{
    encode_frame, read_preamble, AckStatus, Frame, FrameDecoder, FrameKind, Hello, HelloAck,
    Preamble, Reader, Target, WireError, CAPABILITIES, FRAME_HEADER_LEN, MAX_HANDSHAKE_FRAME,
    PREAMBLE_LEN,
};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Initial size of the buffer that gathers small parts, so many small frames become one syscall.
const WRITE_BUFFER: usize = 256 * 1024;
/// Most buffers passed to one vectored write (Linux allows 1024).
const MAX_IOVECS: usize = 512;
const READ_CHUNK: usize = 64 * 1024;
/// Most queued frames the writer takes at once, so that it accounts for progress regularly.
const BATCH_FRAMES: usize = 4096;
fn invalid(e: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

pub(crate) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(inbound(inner.clone(), stream));
                }
                // Out of descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn inbound(inner: Arc<Inner>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept_handshake(&inner, &mut stream)).await {
        Ok(Ok(Some((peer, conn, buf)))) => run(inner, peer, conn, stream, buf).await,
        Ok(Ok(None)) => {}
        Ok(Err(_)) | Err(_) => Stats::incr(&inner.stats.handshake_failures),
    }
}

type Established = (Arc<Peer>, Arc<Conn>, BytesMut);

/// The acceptor's half of the handshake. `Ok(None)` means the dialer was politely refused.
async fn accept_handshake(
    inner: &Arc<Inner>,
    stream: &mut TcpStream,
) -> io::Result<Option<Established>> {
    let mut pre = [0u8; PREAMBLE_LEN];
    stream.read_exact(&mut pre).await?;
    // Answer with our preamble even on a version mismatch, so the dialer can tell why.
    stream.write_all(&Preamble::ours()).await?;
    read_preamble(&pre).map_err(invalid)?;
    let mut buf = BytesMut::with_capacity(1024);
    let frame = read_frame(stream, &mut buf, MAX_HANDSHAKE_FRAME).await?;
    if frame.kind != FrameKind::Hello {
        return Err(invalid(WireError::Invalid("expected hello")));
    }
    let hello = Hello::decode(&frame.body).map_err(invalid)?;
    let channel = inner.channel_ids.get(&hello.channel).copied();
    let status = match channel {
        _ if hello.spec.name == *inner.local_name => AckStatus::Refused,
        None => AckStatus::UnknownChannel,
        Some(ch) if hello.index >= inner.parallelism[ch] => AckStatus::UnknownChannel,
        Some(_) if cluster::is_removed(inner, &hello.spec.name, hello.incarnation) => {
            AckStatus::Removed
        }
        Some(_) if inner.is_stopping() => AckStatus::Refused,
        Some(_) => AckStatus::Accepted,
    };
    let mut ack = HelloAck {
        status,
        name: inner.local_name.to_string(),
        incarnation: cluster::incarnation(inner),
        pids: inner.cfg.pids.clone(),
        capabilities: CAPABILITIES,
    };
    let accepted = match (status, channel) {
        (AckStatus::Accepted, Some(ch)) => {
            let peer = cluster::ensure_peer(inner, &hello.spec);
            let id = inner.next_conn_id.fetch_add(1, Ordering::Relaxed);
            let origin = Origin::new(
                &hello.spec.name,
                &hello.pids,
                &inner.local_name,
                &inner.cfg.pids,
                inner.cfg.rewrite,
            );
            let conn = Arc::new(Conn::new(
                id,
                ch,
                hello.index,
                hello.incarnation,
                false,
                origin,
            ));
            if cluster::install(inner, &peer, &conn) {
                Some((peer, conn))
            } else {
                ack.status = AckStatus::Duplicate;
                None
            }
        }
        _ => None,
    };
    if let Err(e) = stream
        .write_all(&encode_frame(FrameKind::HelloAck, &ack.encode()))
        .await
    {
        if let Some((peer, conn)) = &accepted {
            conn.close(CloseReason::Io);
            cluster::uninstall(inner, peer, conn);
        }
        return Err(e);
    }
    Ok(accepted.map(|(p, c)| (p, c, buf)))
}

enum DialOutcome {
    Connected(Arc<Conn>, TcpStream, BytesMut),
    /// The other side holds the slot with the connection the tie-break prefers.
    Duplicate,
}

/// Fills one slot of `peer`; on failure schedules the next attempt with backoff.
pub(crate) async fn dial(inner: Arc<Inner>, peer: Arc<Peer>, ch: usize, idx: u16) {
    let outcome =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, dial_handshake(&inner, &peer, ch, idx)).await;
    let slot = &peer.slots[ch][idx as usize];
    let retry_in = match outcome {
        Ok(Ok(DialOutcome::Connected(conn, stream, buf))) => {
            slot.dialing.store(false, Ordering::Release);
            return run(inner, peer, conn, stream, buf).await;
        }
        Ok(Ok(DialOutcome::Duplicate)) => inner.cfg.connection_interval,
        Ok(Err(_)) | Err(_) => {
            let failures = slot.failures.fetch_add(1, Ordering::Relaxed) + 1;
            cluster::backoff(&inner, failures)
        }
    };
    *slot.not_before.lock() = Instant::now() + retry_in;
    slot.dialing.store(false, Ordering::Release);
}

async fn dial_handshake(
    inner: &Arc<Inner>,
    peer: &Arc<Peer>,
    ch: usize,
    idx: u16,
) -> io::Result<DialOutcome> {
    let addrs = peer.spec.read().listen_addrs.clone();
    let mut last_err = io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "node spec has no listen address",
    );
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = e,
        }
    }
    let mut stream = stream.ok_or(last_err)?;
    stream.set_nodelay(true)?;
    let hello = Hello {
        spec: inner.local.clone(),
        incarnation: cluster::incarnation(inner),
        pids: inner.cfg.pids.clone(),
        channel: inner.cfg.channels[ch].name.clone(),
        index: idx,
        capabilities: CAPABILITIES,
    };
    let mut out = Preamble::ours().to_vec();
    out.extend_from_slice(&encode_frame(FrameKind::Hello, &hello.encode()));
    stream.write_all(&out).await?;
    let mut pre = [0u8; PREAMBLE_LEN];
    stream.read_exact(&mut pre).await?;
    read_preamble(&pre).map_err(invalid)?;
    let mut buf = BytesMut::with_capacity(1024);
    let frame = read_frame(&mut stream, &mut buf, MAX_HANDSHAKE_FRAME).await?;
    if frame.kind != FrameKind::HelloAck {
        return Err(invalid(WireError::Invalid("expected hello ack")));
    }
    let ack = HelloAck::decode(&frame.body).map_err(invalid)?;
    if ack.name != *peer.name {
        // Another node answers at that address (the peer moved): not the node we want.
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "unexpected node at address",
        ));
    }
    match ack.status {
        AckStatus::Accepted => {
            let id = inner.next_conn_id.fetch_add(1, Ordering::Relaxed);
            let origin = Origin::new(
                &peer.name,
                &ack.pids,
                &inner.local_name,
                &inner.cfg.pids,
                inner.cfg.rewrite,
            );
            let conn = Arc::new(Conn::new(id, ch, idx, ack.incarnation, true, origin));
            if cluster::install(inner, peer, &conn) {
                Ok(DialOutcome::Connected(conn, stream, buf))
            } else {
                Ok(DialOutcome::Duplicate)
            }
        }
        AckStatus::Duplicate => Ok(DialOutcome::Duplicate),
        other => Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("handshake refused: {other:?}"),
        )),
    }
}

async fn read_frame(stream: &mut TcpStream, buf: &mut BytesMut, max: usize) -> io::Result<Frame> {
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

/// Runs an installed connection until either side closes it, then takes it out of its slot.
async fn run(
    inner: Arc<Inner>,
    peer: Arc<Peer>,
    conn: Arc<Conn>,
    stream: TcpStream,
    buf: BytesMut,
) {
    Stats::incr(&inner.stats.connections_opened);
    let (rd, wr) = stream.into_split();
    let socket = Arc::new(wr);
    conn.queue.attach(socket.clone());
    tokio::spawn(write_loop(inner.clone(), conn.clone(), socket));
    let why = read_loop(&inner, &peer, &conn, rd, buf).await;
    conn.close(why);
    cluster::uninstall(&inner, &peer, &conn);
    Stats::incr(&inner.stats.connections_closed);
}

/// Drains the queue in batches: small frames are gathered into one buffer, so a burst of them
/// costs few syscalls; large ones are written as they are.
async fn write_loop(inner: Arc<Inner>, conn: Arc<Conn>, socket: Arc<OwnedWriteHalf>) {
    let low_water = inner.cfg.send_queue_limit / 2;
    let mut out = Vec::with_capacity(WRITE_BUFFER);
    let mut pacer = Pacer::new(&inner.interactive, conn.id);
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
        q.idle().await;
    }
    let _ = socket2::SockRef::from(socket.as_ref().as_ref()).shutdown(std::net::Shutdown::Write);
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
    inner: &Arc<Inner>,
    peer: &Peer,
    conn: &Arc<Conn>,
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
) -> CloseReason {
    let decoder = FrameDecoder::new(inner.cfg.max_frame_size);
    let mut stop = conn.stop_reader.subscribe();
    let ping = &inner.cfg.ping;
    let mut last_rx = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    let mut attempts = 0u32;
    let mut nonce = 0u64;
    let mut pending: Option<Pending> = None;
    let mut pacer = Pacer::new(&inner.interactive, conn.id);
    loop {
        pacer.pace().await;
        while pending.is_none() {
            let next = match take_large(inner, &decoder, &mut buf) {
                Ok(Some(p)) if p.is_full() => deliver_large(inner, conn, p),
                Ok(Some(p)) => {
                    pending = Some(p);
                    break;
                }
                Ok(None) => match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => handle_frame(inner, peer, conn, frame),
                    Ok(None) => break,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if next.is_err() {
                Stats::incr(&inner.stats.protocol_errors);
                return CloseReason::ProtocolError;
            }
        }
        if *stop.borrow() {
            // The closer named the reason.
            return CloseReason::PeerClosed;
        }
        // Room for the rest of the current frame, so a large one arrives in few reads. Inside a
        // large frame, read only up to its end: bytes of the next frame behind it would have to
        // be moved to the front of the buffer once the frame is handed off.
        let mut read_limit = 0;
        if pending.is_none() {
            let wanted = decoder.wanted(&buf);
            buf.reserve(wanted.clamp(READ_CHUNK, inner.cfg.max_frame_size + 5));
            read_limit = if wanted > READ_CHUNK {
                wanted
            } else {
                buf.capacity() - buf.len()
            };
        }
        let deadline = match ping_sent {
            Some(at) => at + ping.timeout,
            None => last_rx + ping.idle_timeout,
        };
        let syscall_max = pacer.syscall_max();
        tokio::select! {
            read = read_some(&mut rd, &mut buf, pending.as_mut(), read_limit, syscall_max) => match read {
                Ok(0) => return CloseReason::PeerClosed,
                Err(_) => return CloseReason::Io,
                Ok(n) => {
                    inner.stats.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                    if n < READ_CHUNK {
                        pacer.rested();
                    }
                    last_rx = Instant::now();
                    ping_sent = None;
                    attempts = 0;
                    if let Some(p) = pending.as_mut() {
                        p.filled += n;
                    }
                    if pending.as_ref().is_some_and(Pending::is_full) {
                        let done = pending.take().map(|p| deliver_large(inner, conn, p));
                        if let Some(Err(_)) = done {
                            Stats::incr(&inner.stats.protocol_errors);
                            return CloseReason::ProtocolError;
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline.into()), if ping.enabled => {
                if ping_sent.is_some() {
                    attempts += 1;
                    if attempts >= ping.max_attempts {
                        Stats::incr(&inner.stats.ping_timeouts);
                        return CloseReason::PingTimeout;
                    }
                }
                nonce += 1;
                conn.enqueue(encode_frame(FrameKind::Ping, &nonce.to_be_bytes()));
                ping_sent = Some(Instant::now());
            }
            _ = stop.changed() => return CloseReason::PeerClosed,
        }
    }
}

/// Reads into the pending large frame if there is one (at most `max` bytes), else into the read
/// buffer (at most `limit` bytes).
async fn read_some(
    rd: &mut OwnedReadHalf,
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
    inner: &Inner,
    decoder: &FrameDecoder,
    buf: &mut BytesMut,
) -> Result<Option<Pending>, WireError> {
    let Some((FrameKind::Data, len)) = decoder.peek(buf)? else {
        return Ok(None);
    };
    if len < LARGE_FRAME_BODY {
        return Ok(None);
    }
    let Some(mut lent) = inner.handler.frame_buf(len) else {
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

fn deliver_large(inner: &Inner, conn: &Conn, frame: Pending) -> Result<(), WireError> {
    let body = frame.buf.as_slice();
    let mut r = Reader::new(body);
    let target = Target::decode(&mut r)?;
    let payload_at = body.len() - r.remaining();
    Stats::incr(&inner.stats.received);
    if is_stale(inner, &target) {
        Stats::incr(&inner.stats.dropped_stale_pid);
        return Ok(());
    }
    count(
        inner,
        inner
            .handler
            .deliver_buf(&conn.origin, &target, frame.buf, payload_at),
    );
    Ok(())
}

/// A pid of an earlier life of this node: its process is gone, whatever has its number now.
fn is_stale(inner: &Inner, target: &Target) -> bool {
    matches!(target, Target::Pid { creation: Some(c), .. } if *c != inner.cfg.pids.creation)
}

fn count(inner: &Inner, delivery: Delivery) {
    match delivery {
        Delivery::Delivered => {}
        Delivery::NoDestination => Stats::incr(&inner.stats.dropped_unknown_dest),
        Delivery::Undecodable => Stats::incr(&inner.stats.dropped_decode),
        Delivery::RefusedAtoms => Stats::incr(&inner.stats.dropped_atoms),
    }
}

fn handle_frame(
    inner: &Arc<Inner>,
    peer: &Peer,
    conn: &Conn,
    frame: Frame,
) -> Result<(), WireError> {
    match frame.kind {
        FrameKind::Data => {
            let mut r = Reader::new(&frame.body);
            let target = Target::decode(&mut r)?;
            let payload = frame.body.slice(frame.body.len() - r.remaining()..);
            Stats::incr(&inner.stats.received);
            if frame.body.len() < LARGE_FRAME_BODY {
                inner.interactive.note(conn.id);
            }
            if is_stale(inner, &target) {
                Stats::incr(&inner.stats.dropped_stale_pid);
                return Ok(());
            }
            count(inner, inner.handler.deliver(&conn.origin, &target, payload));
        }
        FrameKind::Ping => {
            conn.enqueue(encode_frame(FrameKind::Pong, &frame.body));
        }
        FrameKind::Pong => {}
        FrameKind::Gossip => cluster::on_gossip(inner, &peer.name, State::decode(&frame.body)?),
        FrameKind::Hello | FrameKind::HelloAck => {
            return Err(WireError::Invalid("handshake frame after handshake"))
        }
    }
    Ok(())
}
