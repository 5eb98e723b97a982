include!("../build/git_commit.rs");
