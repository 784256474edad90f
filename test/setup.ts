// Tests never reach real AWS: fake credentials and a fixed region; endpoints are set per test to local servers.
process.env.AWS_ACCESS_KEY_ID = 'test';
process.env.AWS_SECRET_ACCESS_KEY = 'test';
process.env.AWS_REGION = 'us-east-1';
process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.POWERTOOLS_TRACE_ENABLED = 'false';
delete process.env.AWS_PROFILE;
