//! Remembered versions: what compare-and-swap connectors do with plain
//! writes after another process changed the object, and what
//! last-write-wins connectors do instead. The "other process" is a peer
//! proxy on the same backend.

use state_client::Condition;

use super::{Case, Outcome, case, doing, ensure_eq, expect_error};
use crate::Ctx;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(cas_conflict_after_foreign_write, |t| t.profile.cas(), 1),
        case!(
            cas_unread_key_is_written_unconditionally,
            |t| t.profile.cas(),
            1
        ),
        case!(cas_key_deleted_elsewhere_conflicts, |t| t.profile.cas(), 1),
        case!(cas_delete_forgets_the_version, |t| t.profile.cas(), 1),
        case!(
            cas_key_read_as_missing_is_created_only_if_absent,
            |t| t.profile.cas(),
            1
        ),
        case!(lww_overwrites_foreign_write, |t| !t.profile.cas(), 1),
    ]
}

async fn cas_conflict_after_foreign_write(cx: &Ctx<'_>) -> Outcome {
    let (ours, theirs) = (&cx.client, &cx.peers[0]);
    let key = cx.key("counter");
    doing("create", ours.put(&key, "0", Condition::None).await)?;
    doing("our read", ours.get(&key).await)?;
    doing(
        "their write",
        theirs.put(&key, "theirs", Condition::None).await,
    )?;
    expect_error(
        "our plain write after theirs",
        ours.put(&key, "ours", Condition::None).await,
        409,
        "conflict",
    )?;
    ensure_eq!(
        &doing("GET", ours.get(&key).await)?.data[..],
        b"theirs",
        "the other writer's value is kept"
    );
    // The read above refreshed our version: now the write goes through.
    doing(
        "write after reading again",
        ours.put(&key, "ours", Condition::None).await,
    )?;
    ensure_eq!(
        &doing("their GET", theirs.get(&key).await)?.data[..],
        b"ours",
        "value after the retry"
    );
    Ok(())
}

async fn cas_unread_key_is_written_unconditionally(cx: &Ctx<'_>) -> Outcome {
    let (ours, theirs) = (&cx.client, &cx.peers[0]);
    let key = cx.key("fresh");
    doing(
        "their write",
        theirs.put(&key, "theirs", Condition::None).await,
    )?;
    doing(
        "our first write, never having read",
        ours.put(&key, "ours", Condition::None).await,
    )?;
    ensure_eq!(
        &doing("GET", theirs.get(&key).await)?.data[..],
        b"ours",
        "value"
    );
    Ok(())
}

async fn cas_key_deleted_elsewhere_conflicts(cx: &Ctx<'_>) -> Outcome {
    let (ours, theirs) = (&cx.client, &cx.peers[0]);
    let key = cx.key("doomed");
    doing("create", ours.put(&key, "0", Condition::None).await)?;
    doing("our read", ours.get(&key).await)?;
    doing("their delete", theirs.delete(&key, Condition::None).await)?;
    expect_error(
        "our write of a key deleted elsewhere",
        ours.put(&key, "1", Condition::None).await,
        409,
        "conflict",
    )?;
    ensure_eq!(
        doing("HEAD", theirs.head(&key).await)?,
        None,
        "the key stays deleted"
    );
    Ok(())
}

async fn cas_delete_forgets_the_version(cx: &Ctx<'_>) -> Outcome {
    let (ours, theirs) = (&cx.client, &cx.peers[0]);
    let key = cx.key("recycled");
    doing("create", ours.put(&key, "0", Condition::None).await)?;
    doing("our delete", ours.delete(&key, Condition::None).await)?;
    doing(
        "their create",
        theirs.put(&key, "theirs", Condition::None).await,
    )?;
    doing(
        "our write after our delete",
        ours.put(&key, "ours", Condition::None).await,
    )?;
    ensure_eq!(
        &doing("GET", theirs.get(&key).await)?.data[..],
        b"ours",
        "value"
    );
    Ok(())
}

async fn lww_overwrites_foreign_write(cx: &Ctx<'_>) -> Outcome {
    let (ours, theirs) = (&cx.client, &cx.peers[0]);
    let key = cx.key("contested");
    doing("create", ours.put(&key, "0", Condition::None).await)?;
    doing("our read", ours.get(&key).await)?;
    doing(
        "their write",
        theirs.put(&key, "theirs", Condition::None).await,
    )?;
    doing("our write", ours.put(&key, "ours", Condition::None).await)?;
    ensure_eq!(
        &doing("GET", theirs.get(&key).await)?.data[..],
        b"ours",
        "last write wins"
    );
    Ok(())
}

async fn cas_key_read_as_missing_is_created_only_if_absent(cx: &Ctx<'_>) -> Outcome {
    // The compat runtime's "read, then write" on a file someone else
    // removed: having read that it is missing, the write creates it...
    let (ours, theirs) = (&cx.client, &cx.peers[0]);
    let key = cx.key("reborn");
    doing("create", ours.put(&key, "0", Condition::None).await)?;
    doing("their delete", theirs.delete(&key, Condition::None).await)?;
    expect_error(
        "our read of the deleted key",
        ours.get(&key).await,
        404,
        "key_not_found",
    )?;
    doing(
        "our write after reading it missing",
        ours.put(&key, "1", Condition::None).await,
    )?;
    // ...but not over a file someone created after that read.
    doing(
        "their delete again",
        theirs.delete(&key, Condition::None).await,
    )?;
    expect_error("our read", ours.get(&key).await, 404, "key_not_found")?;
    doing(
        "their create",
        theirs.put(&key, "theirs", Condition::None).await,
    )?;
    expect_error(
        "our write over their create",
        ours.put(&key, "ours", Condition::None).await,
        409,
        "conflict",
    )?;
    ensure_eq!(
        &doing("GET", theirs.get(&key).await)?.data[..],
        b"theirs",
        "their value is kept"
    );
    Ok(())
}
