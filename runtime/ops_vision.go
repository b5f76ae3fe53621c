package runtime

var visionOps = []opDef{}
