//! Writes during the copy: an application indexes, partially updates and
//! deletes documents through the aliases while the copy runs. Afterwards
//! the new generation must equal what the application expects, document by
//! document: no lost write, no deleted document resurrected.

mod common;

use common::app::App;
use common::{Env, MAPPING_V2};
use reindexd::copy::drive;
use reindexd::migration::Action;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_copy_never_overwrites_or_resurrects_application_writes() {
    // Small batches and a throttle make the copy last a few seconds, so the
    // writer's operations land before, during and after each document's copy.
    let env = Env::new(
        "writes",
        &["kb"],
        "[copy]\nbatch_bytes = \"16KiB\"\npage_size = 200\nslices = 2",
    )
    .await;
    let m = &env.migrator;
    m.init("kb").await.unwrap();
    let initial = 4_000u64;
    env.load_docs("kb", initial).await;
    env.set_mapping("kb", MAPPING_V2);
    let state = m.reindex("kb").await.unwrap();
    let target = state.phase.write_index().to_owned();
    m.update_copy("kb", Action::Throttle, |c| {
        c.requests_per_second = Some(1_000.0)
    })
    .await
    .unwrap();

    let copy = {
        let m = m.clone();
        tokio::spawn(async move {
            let handle = common::detached_handle("kb");
            drive(&m, "kb", "test-copier", &handle).await
        })
    };

    // The application: its own view of what each id must end up as.
    let mut app = App::new(&env.write_alias("kb"), initial, 0x5eed_1234_abcd_0001);
    app.run(&env.es, 1_500).await;
    eprintln!(
        "writer: {} indexed, {} updated, {} updates of missing documents, {} deleted",
        app.indexed, app.updated, app.update_missing, app.deleted
    );
    assert!(
        app.update_missing > 0 && app.updated > 0,
        "the writer must race the copy both ways"
    );

    let state = copy.await.unwrap().unwrap();
    assert_eq!(state.phase.name(), "ready", "{:?}", state.phase);
    let progress = state.phase.copy().unwrap();
    assert_eq!(progress.total, initial);
    assert_eq!(progress.copied + progress.superseded, initial);
    assert_eq!(progress.resent, 0, "nothing was sent twice");
    assert!(
        progress.superseded > 0,
        "some copies must have lost to application writes"
    );

    app.assert_matches(&env.es, &target).await;
}
